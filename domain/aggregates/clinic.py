"""The clinic's configuration: name, time zone, slot times, working days and doctors.

One stream per clinic (id = clinic id). Scheduling reads its hours and doctors.
"""

from __future__ import annotations

from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.aggregate import Aggregate
from domain.aggregates._common import require_exists
from domain.errors import Conflict, InvalidArguments, NotFound
from domain.events import ClinicConfigured, DoctorAdded
from domain.scheduling import (
    DEFAULT_SLOT_TIMES,
    DEFAULT_TIMEZONE,
    DEFAULT_WORKING_DAYS,
    ClinicHours,
    DoctorInfo,
    parse_hhmm,
)


class Clinic(Aggregate):
    """A clinic (tenant) and its doctors."""

    stream_type = "clinic"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name: str | None = None
        self.timezone = DEFAULT_TIMEZONE
        self.slot_times: list[str] = list(DEFAULT_SLOT_TIMES)
        self.working_days: list[int] = list(DEFAULT_WORKING_DAYS)
        self.location = ""
        self.doctors: dict[str, dict[str, Any]] = {}

    def configure(
        self,
        *,
        name: str,
        timezone: str = DEFAULT_TIMEZONE,
        slot_times: list[str] | None = None,
        working_days: list[int] | None = None,
        location: str = "",
    ) -> bool:
        """Set the configuration; False when nothing changes."""
        times = _checked_slot_times(slot_times or list(DEFAULT_SLOT_TIMES))
        days = _checked_working_days(working_days or list(DEFAULT_WORKING_DAYS))
        _check_timezone(timezone)
        new = (name, timezone, times, days, location)
        if self.exists and new == (
            self.name,
            self.timezone,
            self.slot_times,
            self.working_days,
            self.location,
        ):
            return False
        self._record(
            ClinicConfigured(
                name=name, timezone=timezone, slot_times=times, working_days=days, location=location
            )
        )
        return True

    def add_doctor(self, doctor_id: str, name: str, services: list[str] | None = None) -> bool:
        """Add a doctor; False for an identical repeat, Conflict for a different one."""
        require_exists(self, "clinic")
        wanted = {"name": name, "services": sorted(set(services or []))}
        current = self.doctors.get(doctor_id)
        if current == wanted:
            return False
        if current is not None:
            raise Conflict("a different doctor has this id", doctorId=doctor_id)
        self._record(DoctorAdded(doctor_id=doctor_id, **wanted))
        return True

    def hours(self) -> ClinicHours:
        """The booking hours, for ``domain.scheduling``."""
        return ClinicHours(self.timezone, tuple(self.slot_times), tuple(self.working_days))

    def doctor_infos(self) -> list[DoctorInfo]:
        """The doctors, in id order, for ``domain.scheduling``."""
        return [
            DoctorInfo(doctor_id, d["name"], tuple(d["services"]))
            for doctor_id, d in sorted(self.doctors.items())
        ]

    def require_doctor(self, doctor_id: str) -> None:
        """Raise ``NotFound`` unless the clinic has this doctor."""
        if doctor_id not in self.doctors:
            raise NotFound(f"doctor {doctor_id!r} not found", doctorId=doctor_id)

    # --- state --------------------------------------------------------------------

    def when_ClinicConfigured(self, e: ClinicConfigured) -> None:
        self.name, self.timezone, self.location = e.name, e.timezone, e.location
        self.slot_times, self.working_days = list(e.slot_times), list(e.working_days)

    def when_DoctorAdded(self, e: DoctorAdded) -> None:
        self.doctors[e.doctor_id] = {"name": e.name, "services": list(e.services)}

    _FIELDS = ("name", "timezone", "slot_times", "working_days", "location", "doctors")

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timezone": self.timezone,
            "slot_times": list(self.slot_times),
            "working_days": list(self.working_days),
            "location": self.location,
            "doctors": {k: dict(v) for k, v in self.doctors.items()},
        }

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        clinic = cls(aggregate_id)
        for name in cls._FIELDS:
            setattr(clinic, name, state[name])
        clinic.version = version
        return clinic


def _invalid(path: str, message: str, expected: str) -> InvalidArguments:
    return InvalidArguments(
        message, errors=[{"path": path, "message": message, "expected": expected}]
    )


def _checked_slot_times(times: list[str]) -> list[str]:
    parsed = sorted({parse_hhmm(t) for t in times})
    return [t.strftime("%H:%M") for t in parsed]


def _checked_working_days(days: list[int]) -> list[int]:
    if any(d not in range(7) for d in days):
        raise _invalid("workingDays", "working days are 0 (Monday) to 6 (Sunday)", "0..6")
    return sorted(set(days))


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid("timezone", f"unknown time zone {name!r}", "an IANA zone name") from exc
