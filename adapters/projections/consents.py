"""Projection "consents": the current decision per patient and type, with its proof."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.projections.base import Conn, ProjectedEvent, Projection, Rows, Table, ts

CONSENTS = Table(
    "rm_consents",
    ["clinic_id", "patient_id", "consent_type"],
    [
        ("clinic_id", "text"),
        ("patient_id", "text"),
        ("consent_type", "text"),
        ("status", "text"),
        ("phone", "text"),
        ("policy_version", "text"),
        ("decided_at", "timestamptz"),
        ("expires_at", "timestamptz"),
        ("source", "text"),
        ("ip_address", "text"),
        ("event_position", "bigint"),
        ("recorded_at", "timestamptz"),
    ],
)
_FORGET = """
UPDATE rm_consents SET phone = NULL, ip_address = NULL
 WHERE (clinic_id, patient_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""


class ConsentsProjection(Projection):
    """Decisions are kept after an erasure (the audit trail) without phone or IP."""

    name = "consents"
    tables = (CONSENTS.name,)
    handles = frozenset({"ConsentRecorded", "PatientErased"})

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        consents = Rows(CONSENTS)
        erased: set[tuple[str, str]] = set()
        for e in events:
            d = e.data
            if e.type == "PatientErased":
                erased.add((e.clinic_id, d["patient_id"]))
                for row in consents.rows():
                    if (row["clinic_id"], row["patient_id"]) == (e.clinic_id, d["patient_id"]):
                        row.update(phone=None, ip_address=None)
                continue
            consents.put(
                {
                    "clinic_id": e.clinic_id,
                    "patient_id": d["patient_id"],
                    "consent_type": d["consent_type"],
                    "status": d["status"],
                    "phone": d.get("phone"),
                    "policy_version": d["policy_version"],
                    "decided_at": ts(d.get("decided_at")) or e.recorded_at,
                    "expires_at": ts(d.get("expires_at")),
                    "source": d["source"],
                    "ip_address": d.get("ip_address"),
                    "event_position": e.position,
                    "recorded_at": e.recorded_at,
                }
            )
        await consents.flush(conn)
        if erased:
            keys = list(erased)
            await conn.execute(_FORGET, [k[0] for k in keys], [k[1] for k in keys])
