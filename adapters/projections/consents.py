"""Projection "consents": the current decision per patient and type, with its proof."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from adapters.crypto.keys import subject_id
from adapters.projections.base import Conn, ProjectedEvent, Projection, Row, Rows, Table, ts
from adapters.projections.personal import value_aad

CONSENTS = Table(
    "rm_consents",
    ["clinic_id", "patient_id", "consent_type"],
    [
        ("clinic_id", "text"),
        ("patient_id", "text"),
        ("consent_type", "text"),
        ("status", "text"),
        ("phone_hash", "text"),
        ("policy_version", "text"),
        ("decided_at", "timestamptz"),
        ("expires_at", "timestamptz"),
        ("source", "text"),
        ("ip_address_sealed", "jsonb"),
        ("event_position", "bigint"),
        ("recorded_at", "timestamptz"),
    ],
)
_FORGET = """
UPDATE rm_consents SET phone_hash = NULL, ip_address_sealed = NULL
 WHERE (clinic_id, patient_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""


def ip_address_aad(clinic_id: str, patient_id: str, consent_type: str) -> bytes:
    """Where a decision's sealed IP address belongs (its associated data)."""
    return value_aad(clinic_id, CONSENTS.name, patient_id, consent_type, "ip_address")


class ConsentsProjection(Projection):
    """Decisions are kept after an erasure (the audit trail) without phone or IP.

    The phone is kept as its keyed hash (``CheckConsent`` by phone), the IP address
    sealed under the patient's key.
    """

    name = "consents"
    version = 2
    personal_data = True
    tables = (CONSENTS.name,)
    handles = frozenset({"ConsentRecorded", "PatientErased"})

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        consents = Rows(CONSENTS)
        erased: set[tuple[str, str]] = set()
        ips: dict[tuple[str, str, str], tuple[Row, ProjectedEvent]] = {}
        for e in events:
            d = e.data
            if e.type == "PatientErased":
                erased.add((e.clinic_id, d["patient_id"]))
                for row in consents.rows():
                    if (row["clinic_id"], row["patient_id"]) == (e.clinic_id, d["patient_id"]):
                        row.update(phone_hash=None, ip_address_sealed=None)
                        ips.pop(CONSENTS.key_of(row), None)
                continue
            row = consents.put(
                {
                    "clinic_id": e.clinic_id,
                    "patient_id": d["patient_id"],
                    "consent_type": d["consent_type"],
                    "status": d["status"],
                    "phone_hash": self.personal.phone_hash(e.clinic_id, d.get("phone")),
                    "policy_version": d["policy_version"],
                    "decided_at": ts(d.get("decided_at")) or e.recorded_at,
                    "expires_at": ts(d.get("expires_at")),
                    "source": d["source"],
                    "ip_address_sealed": None,
                    "event_position": e.position,
                    "recorded_at": e.recorded_at,
                }
            )
            ips[CONSENTS.key_of(row)] = (row, e)
        await self._seal_ips(ips.values())
        await consents.flush(conn)
        if erased:
            keys = list(erased)
            await conn.execute(_FORGET, [k[0] for k in keys], [k[1] for k in keys])

    async def _seal_ips(self, decisions: Iterable[tuple[Row, ProjectedEvent]]) -> None:
        pending = list(decisions)
        sealer = self.personal.sealer()
        await sealer.load(e.key_id for _, e in pending)
        for row, e in pending:
            row["ip_address_sealed"] = await sealer.seal(
                e.clinic_id,
                subject_id("patient", row["patient_id"]),
                e.key_id,
                ip_address_aad(e.clinic_id, row["patient_id"], row["consent_type"]),
                e.data.get("ip_address"),
            )
