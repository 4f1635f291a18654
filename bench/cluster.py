"""What the whole-system benchmarks share: the process cluster, a seeded clinic of many
consented patients, an endless mixed load and the end-of-run accounting.

The processes themselves are ``tests.chaos.cluster.Cluster`` (PostgreSQL, the Temporal
dev server, projector, worker and API as separate processes on loopback ports), so
``bench/soak.py``, ``bench/system.py`` and the chaos test run the very same system.

``MixedLoad`` hands out requests forever without ever colliding: bookings of
``consultation`` on distinct (patient, weekday) pairs with at most ``PER_DAY`` per day
(three doctors offer it, five slots each), lead scoring on phones never used
before, and the ``appointment_confirmation`` template to consented patients.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.chaos.cluster import CLINIC, Client, Cluster, ClusterError, Outcome  # noqa: E402

__all__ = [
    "CLINIC",
    "Client",
    "Cluster",
    "ClusterError",
    "MixedLoad",
    "Outcome",
    "account",
    "percentile",
    "seed_patients",
    "totals",
]

PER_DAY = 10
LEAD_TEXTS = (
    "Bună, vreau All-on-4, cât costă?",
    "Aș dori un implant dentar, ce preț aveți?",
    "Vreau o albire, am nunta luna viitoare.",
    "Salut, ce program aveți?",
    "I would like veneers, how much in euro?",
    "Am durere de măsea, puteți azi?",
)
CHANNELS = ("whatsapp", "web", "voice", "referral")
BENCH_ENV = {"MEDICALCOR_RATE_LIMIT": "100000", "MEDICALCOR_RATE_BURST": "100000"}
"""Benchmarks measure the system, not the per-key rate limiter."""


@dataclass(frozen=True)
class Patient:
    patient_id: str
    first_name: str
    phone: str


def patient(i: int) -> Patient:
    return Patient(f"pat-b{i:05d}", f"Pacient{i}", f"+40755{i:06d}")


async def seed_patients(cluster: Cluster, count: int) -> list[Patient]:
    """Register ``count`` patients with data_processing + appointment_reminders consents,
    through the command bus (the same commands the demo seed runs)."""
    from api.dev_setup import services_for
    from domain import commands as c
    from domain.cqrs import CommandContext

    people = [patient(i) for i in range(count)]
    async with services_for(cluster.settings, cluster.database_url, pool_max=8) as services:

        async def register(p: Patient) -> None:
            todo: list[Any] = [
                c.RegisterPatient(
                    patient_id=p.patient_id, first_name=p.first_name, last_name="Bench",
                    phone=p.phone, email=None,
                ),
                *(
                    c.RecordConsent(
                        patient_id=p.patient_id, phone=p.phone, consent_type=kind,
                        status="granted", source="bench_seed",
                    )
                    for kind in ("data_processing", "appointment_reminders")
                ),
            ]  # fmt: skip
            for n, command in enumerate(todo):
                ctx = CommandContext(
                    clinic_id=CLINIC,
                    actor="bench",
                    idempotency_key=f"bench-seed:{p.patient_id}:{n}",
                )
                await services.command_bus.execute(command, ctx)

        for first in range(0, len(people), 8):
            await asyncio.gather(*(register(p) for p in people[first : first + 8]))
    return people


def weekdays(start: date) -> Iterator[date]:
    day = start
    while True:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


class MixedLoad:
    """An endless, collision-free mix: booking, score_lead, send_whatsapp in turn."""

    def __init__(self, patients: Sequence[Patient], *, run: int = 0) -> None:
        if len(patients) < PER_DAY:
            raise ValueError(f"need at least {PER_DAY} patients")
        self.patients = list(patients)
        self.days = weekdays(datetime.now(UTC).date() + timedelta(days=3))
        self.day = next(self.days)
        self.run = run
        self.counts: Counter[str] = Counter()
        self.sequence = itertools.cycle(("schedule_appointment", "score_lead", "send_whatsapp"))

    def next(self) -> tuple[str, dict[str, Any]]:
        function = next(self.sequence)
        n = self.counts[function]
        self.counts[function] += 1
        if function == "schedule_appointment":
            if n and n % PER_DAY == 0:
                self.day = next(self.days)
            return function, {
                "patientId": self.patients[n % len(self.patients)].patient_id,
                "serviceType": "consultation",
                "preferredDate": self.day.isoformat(),
                "preferredTimeSlot": "any",
            }
        if function == "score_lead":
            return function, {
                "phone": f"+4076{self.run}{n:06d}",
                "channel": CHANNELS[n % len(CHANNELS)],
                "messages": [{"role": "user", "content": LEAD_TEXTS[n % len(LEAD_TEXTS)]}],
            }
        p = self.patients[(n * 7) % len(self.patients)]
        return function, {
            "to": p.phone,
            "templateName": "appointment_confirmation",
            "templateParams": {
                "name": p.first_name,
                "date": f"{n % 28 + 1:02d}.03.2031",
                "time": f"{9 + n % 8:02d}:30",
                "location": "Str. Victoriei 10, București",
            },
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def totals(cluster: Cluster) -> Counter[str]:
    """Events of the types the load produces, and sandbox outbox rows, so far."""
    import asyncpg

    conn = await asyncpg.connect(cluster.database_url)
    try:
        return await _totals(conn)
    finally:
        await conn.close()


async def account(
    cluster: Cluster, outcomes: Sequence[Outcome], baseline: Counter[str], within: float = 180.0
) -> dict[str, Any]:
    """Wait (bounded) until the asynchronous work of ``outcomes`` is done, then compare
    what was stored since ``baseline`` (``totals`` before the load) with what was accepted.

    Done: one AppointmentScheduled per accepted booking, a message queued for every
    accepted send and booking confirmation, and every queued message sent or failed (a
    booking is scheduled before its confirmation is queued: waiting for the schedule
    alone once ended the wait between the two and counted a message still on its way).
    Returns the counts, ``drain_s`` (seconds that took) and ``effects_ok``.
    """
    import asyncpg

    accepted = Counter(o.function for o in outcomes if o.accepted)
    # every accepted send and every booking's confirmation
    expected_messages = accepted["send_whatsapp"] + accepted["schedule_appointment"]
    started = time.monotonic()
    conn = await asyncpg.connect(cluster.database_url)
    try:
        for _ in range(int(within / 0.5) + 1):
            now = await _totals(conn)
            now.subtract(baseline)
            scheduled = now["AppointmentScheduled"]
            queued, sent = now["WhatsAppMessageQueued"], now["WhatsAppMessageSent"]
            failed = now["WhatsAppMessageFailed"]
            if (
                scheduled >= accepted["schedule_appointment"]
                and queued >= expected_messages  # a booking queues its confirmation last
                and queued == sent + failed
            ):
                break
            await asyncio.sleep(0.5)
        drain_s = time.monotonic() - started
    finally:
        await conn.close()
    leads, outbox = now["LeadCreated"], now["sandbox_rows"]
    ok = (
        scheduled == accepted["schedule_appointment"]
        and leads == accepted["score_lead"]
        and queued == sent == outbox == expected_messages
        and failed == 0
    )
    return {
        "accepted": dict(accepted),
        "appointments_scheduled": scheduled,
        "leads_created": leads,
        "messages_queued": queued,
        "messages_sent": sent,
        "messages_failed": failed,
        "sandbox_rows": outbox,
        "expected_messages": expected_messages,
        "drain_s": round(drain_s, 1),
        "effects_ok": ok,
    }


async def _totals(conn: Any) -> Counter[str]:
    rows = await conn.fetch(
        "SELECT event_type, count(*) AS n FROM events WHERE event_type = ANY($1::text[])"
        " GROUP BY event_type",
        [
            "AppointmentScheduled",
            "LeadCreated",
            "WhatsAppMessageQueued",
            "WhatsAppMessageSent",
            "WhatsAppMessageFailed",
        ],
    )
    out = Counter({r["event_type"]: int(r["n"]) for r in rows})
    out["sandbox_rows"] = int(await conn.fetchval("SELECT count(*) FROM whatsapp_sandbox_outbox"))
    return out
