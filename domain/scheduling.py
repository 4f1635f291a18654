"""Availability: which (doctor, start) pairs the clinic can still book.

Pure: the clinic's hours and doctors, a date range, the occupancy (held and booked
slots) and the current time in; free slots out. The command handlers use it to pick
a slot and to offer alternatives; the read side uses it for ``get_available_slots``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.errors import InvalidArguments
from domain.events import TimeSlot
from domain.services import default_duration

DEFAULT_TIMEZONE = "Europe/Bucharest"
DEFAULT_SLOT_TIMES: tuple[str, ...] = ("09:00", "10:30", "14:00", "15:30", "17:00")
DEFAULT_WORKING_DAYS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""Monday = 0 ... Sunday = 6, as ``date.weekday()``."""
DEFAULT_DURATION = 60
MAX_RANGE_DAYS = 92

AFTERNOON_FROM = time(12, 0)
EVENING_FROM = time(17, 0)

Occupancy = tuple[str, datetime, datetime]
"""``(doctor_id, start, end)`` of a held or booked slot."""


@dataclass(frozen=True)
class ClinicHours:
    """When the clinic books: its time zone, daily slot start times and working days."""

    timezone: str = DEFAULT_TIMEZONE
    slot_times: tuple[str, ...] = DEFAULT_SLOT_TIMES
    working_days: tuple[int, ...] = DEFAULT_WORKING_DAYS

    @property
    def tz(self) -> ZoneInfo:
        """The clinic's time zone."""
        return ZoneInfo(self.timezone)

    def times(self) -> list[time]:
        """The slot start times, sorted."""
        return sorted(parse_hhmm(t) for t in self.slot_times)


@dataclass(frozen=True)
class DoctorInfo:
    """A doctor and the services they perform (empty: every service)."""

    doctor_id: str
    name: str = ""
    services: tuple[str, ...] = field(default_factory=tuple)

    def offers(self, service: str | None) -> bool:
        """True when the doctor performs ``service`` (None: any service)."""
        return service is None or not self.services or service in self.services


@dataclass(frozen=True, order=True)
class Slot:
    """A free slot; sorts by start time, then doctor."""

    start: datetime
    doctor_id: str
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase (gateway results)."""
        return {
            "doctorId": self.doctor_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "durationMinutes": int((self.end - self.start).total_seconds() // 60),
        }


def parse_hhmm(value: str) -> time:
    """``"09:30"`` → ``time(9, 30)``; raises ``InvalidArguments`` otherwise."""
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise InvalidArguments(
            f"not a time of day: {value!r}",
            errors=[{"path": "slotTimes", "message": "bad time", "expected": "HH:MM"}],
        ) from exc


def time_slot_of(local: time) -> TimeSlot:
    """Morning before 12:00, afternoon 12:00–16:59, evening from 17:00."""
    if local < AFTERNOON_FROM:
        return "morning"
    if local < EVENING_FROM:
        return "afternoon"
    return "evening"


def in_time_slot(local: time, wanted: TimeSlot) -> bool:
    """True when a local start time falls in the wanted part of the day."""
    return wanted == "any" or time_slot_of(local) == wanted


def local_date(hours: ClinicHours, instant: datetime) -> date:
    """The clinic's calendar day of an aware instant."""
    return instant.astimezone(hours.tz).date()


def candidate_starts(hours: ClinicHours, day: date, time_slot: TimeSlot = "any") -> list[datetime]:
    """The clinic's slot starts on ``day`` (aware, clinic time), none on days off."""
    if day.weekday() not in hours.working_days:
        return []
    return [
        datetime.combine(day, t, tzinfo=hours.tz)
        for t in hours.times()
        if in_time_slot(t, time_slot)
    ]


def is_candidate_start(hours: ClinicHours, start: datetime) -> bool:
    """True when ``start`` is one of the clinic's slot starts."""
    local = start.astimezone(hours.tz)
    return any(c == start for c in candidate_starts(hours, local.date()))


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: back-to-back slots do not overlap."""
    return a_start < b_end and b_start < a_end


def eligible_doctors(
    doctors: Iterable[DoctorInfo], doctor_id: str | None = None, service: str | None = None
) -> list[DoctorInfo]:
    """Doctors who may take the booking, in id order (ties resolve deterministically)."""
    chosen = [
        d for d in doctors if (doctor_id is None or d.doctor_id == doctor_id) and d.offers(service)
    ]
    return sorted(chosen, key=lambda d: d.doctor_id)


def duration_for(service: str | None, duration: int | None) -> int:
    """The given duration, else the service's default, else 60 minutes."""
    if duration is not None:
        return duration
    return default_duration(service) if service else DEFAULT_DURATION


def days_between(start_date: date, end_date: date) -> list[date]:
    """Every day from ``start_date`` to ``end_date`` inclusive (bounded range)."""
    span = (end_date - start_date).days
    if span < 0 or span >= MAX_RANGE_DAYS:
        raise InvalidArguments(
            f"date range must run forward and cover at most {MAX_RANGE_DAYS} days",
            errors=[
                {
                    "path": "endDate",
                    "message": "bad date range",
                    "expected": f"startDate ≤ endDate < startDate + {MAX_RANGE_DAYS} days",
                }
            ],
        )
    return [start_date + timedelta(days=i) for i in range(span + 1)]


def is_free(doctor_id: str, start: datetime, end: datetime, occupancy: Iterable[Occupancy]) -> bool:
    """True when no held or booked slot of the doctor overlaps ``start``–``end``."""
    return not any(d == doctor_id and overlaps(start, end, s, e) for d, s, e in occupancy)


def available_slots(
    hours: ClinicHours,
    doctors: Sequence[DoctorInfo],
    start_date: date,
    end_date: date,
    *,
    now: datetime,
    occupancy: Iterable[Occupancy] = (),
    doctor_id: str | None = None,
    service: str | None = None,
    duration: int | None = None,
    time_slot: TimeSlot = "any",
    limit: int | None = None,
) -> list[Slot]:
    """Free slots in the range, earliest first; never one that starts at or before ``now``."""
    minutes = duration_for(service, duration)
    taken = list(occupancy)
    who = eligible_doctors(doctors, doctor_id, service)
    found: list[Slot] = []
    for day in days_between(start_date, end_date):
        for start in candidate_starts(hours, day, time_slot):
            if start <= now:
                continue
            end = start + timedelta(minutes=minutes)
            found.extend(
                Slot(start, d.doctor_id, end)
                for d in who
                if is_free(d.doctor_id, start, end, taken)
            )
            if limit is not None and len(found) >= limit:
                return found[:limit]
    return found
