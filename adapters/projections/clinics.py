"""Projection "clinics": each clinic's hours, location and doctors."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.projections.base import Conn, ProjectedEvent, Projection, Rows, Table

CLINICS = Table(
    "rm_clinics",
    ["clinic_id"],
    [
        ("clinic_id", "text"),
        ("name", "text"),
        ("timezone", "text"),
        ("slot_times", "jsonb"),
        ("working_days", "jsonb"),
        ("location", "text"),
        ("updated_at", "timestamptz"),
    ],
)
DOCTORS = Table(
    "rm_doctors",
    ["clinic_id", "doctor_id"],
    [
        ("clinic_id", "text"),
        ("doctor_id", "text"),
        ("name", "text"),
        ("services", "jsonb"),
        ("added_at", "timestamptz"),
    ],
)


class ClinicsProjection(Projection):
    name = "clinics"
    tables = (CLINICS.name, DOCTORS.name)
    handles = frozenset({"ClinicConfigured", "DoctorAdded"})

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        clinics, doctors = Rows(CLINICS), Rows(DOCTORS)
        for e in events:
            d = e.data
            if e.type == "ClinicConfigured":
                clinics.put(
                    {
                        "clinic_id": e.clinic_id,
                        "name": d["name"],
                        "timezone": d["timezone"],
                        "slot_times": d["slot_times"],
                        "working_days": d["working_days"],
                        "location": d.get("location") or "",
                        "updated_at": e.recorded_at,
                    }
                )
            else:
                doctors.put(
                    {
                        "clinic_id": e.clinic_id,
                        "doctor_id": d["doctor_id"],
                        "name": d["name"],
                        "services": d.get("services") or [],
                        "added_at": e.recorded_at,
                    }
                )
        await clinics.flush(conn)
        await doctors.flush(conn)
