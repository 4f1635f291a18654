"""Projection "daily_metrics": per clinic and Europe/Bucharest day."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.projections.base import Conn, Counters, ProjectedEvent, Projection

COUNTED = {
    "LeadCreated": "new_leads",
    "LeadQualified": "qualified_leads",
    "LeadConverted": "converted_leads",
    "LeadLost": "lost_leads",
    "AppointmentScheduled": "appointments_scheduled",
    "AppointmentCancelled": "appointments_cancelled",
    "WhatsAppMessageReceived": "messages_received",
    "WhatsAppMessageSent": "messages_sent",
}


class DailyMetricsProjection(Projection):
    name = "daily_metrics"
    tables = ("daily_metrics",)
    handles = frozenset(COUNTED)

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        counters = Counters(
            "daily_metrics", [("clinic_id", "text"), ("day", "date")], list(COUNTED.values())
        )
        for e in events:
            counters.add((e.clinic_id, e.day), COUNTED[e.type])
        await counters.flush(conn)
