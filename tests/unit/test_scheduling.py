"""Availability from clinic hours, durations, occupancy and the current time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidArguments
from domain.scheduling import (
    ClinicHours,
    DoctorInfo,
    Slot,
    available_slots,
    candidate_starts,
    duration_for,
    eligible_doctors,
    in_time_slot,
    is_candidate_start,
    overlaps,
    time_slot_of,
)

TZ = ZoneInfo("Europe/Bucharest")
HOURS = ClinicHours()
DOCTORS = [DoctorInfo("d-2", "Dr Ion"), DoctorInfo("d-1", "Dr Ana", ("cleaning", "implant"))]
MONDAY = date(2025, 3, 3)
BEFORE = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def test_weekday_slots_are_the_clinic_times_in_bucharest() -> None:
    starts = candidate_starts(HOURS, MONDAY)
    assert [s.strftime("%H:%M") for s in starts] == ["09:00", "10:30", "14:00", "15:30", "17:00"]
    assert all(s.tzinfo is not None and s.utcoffset() == timedelta(hours=2) for s in starts)


def test_summer_time_keeps_local_slot_times() -> None:
    july = date(2025, 7, 7)
    assert candidate_starts(HOURS, july)[0].astimezone(UTC).hour == 6  # 09:00 EEST


def test_no_slots_on_days_off() -> None:
    assert candidate_starts(HOURS, date(2025, 3, 8)) == []  # Saturday
    saturday_clinic = ClinicHours(working_days=(5,))
    assert len(candidate_starts(saturday_clinic, date(2025, 3, 8))) == 5


def test_time_slots_split_the_day() -> None:
    assert time_slot_of(time(10, 30)) == "morning"
    assert time_slot_of(time(12, 0)) == "afternoon"
    assert time_slot_of(time(15, 30)) == "afternoon"
    assert time_slot_of(time(17, 0)) == "evening"
    assert in_time_slot(time(17, 0), "any")
    starts = candidate_starts(HOURS, MONDAY, "afternoon")
    assert [s.strftime("%H:%M") for s in starts] == ["14:00", "15:30"]


def test_durations_by_service() -> None:
    assert duration_for("implant", None) == 90
    assert duration_for("cleaning", None) == 30
    assert duration_for("consultation", None) == 60
    assert duration_for(None, None) == 60
    assert duration_for("implant", 45) == 45


def test_doctors_are_chosen_by_id_and_service() -> None:
    assert [d.doctor_id for d in eligible_doctors(DOCTORS)] == ["d-1", "d-2"]
    assert [d.doctor_id for d in eligible_doctors(DOCTORS, service="whitening")] == ["d-2"]
    assert [d.doctor_id for d in eligible_doctors(DOCTORS, "d-1", "implant")] == ["d-1"]
    assert eligible_doctors(DOCTORS, "d-1", "whitening") == []


def test_all_slots_of_a_free_day_earliest_first_doctor_by_id() -> None:
    slots = available_slots(HOURS, DOCTORS, MONDAY, MONDAY, now=BEFORE, service="cleaning")
    assert len(slots) == 10
    assert slots[0] == Slot(at(MONDAY, 9), "d-1", at(MONDAY, 9, 30))
    assert slots[1].doctor_id == "d-2" and slots == sorted(slots)


def test_occupied_and_overlapping_slots_are_not_offered() -> None:
    taken = [("d-1", at(MONDAY, 9), at(MONDAY, 10, 30)), ("d-2", at(MONDAY, 10), at(MONDAY, 11))]
    slots = available_slots(
        HOURS, DOCTORS, MONDAY, MONDAY, now=BEFORE, occupancy=taken, time_slot="morning"
    )
    assert [(s.doctor_id, s.start.strftime("%H:%M")) for s in slots] == [
        ("d-2", "09:00"),
        ("d-1", "10:30"),
    ]


def test_a_long_booking_blocks_the_next_start() -> None:
    taken = [("d-1", at(MONDAY, 9), at(MONDAY, 10, 30))]
    slots = available_slots(
        HOURS, DOCTORS, MONDAY, MONDAY, now=BEFORE, occupancy=taken, doctor_id="d-1", duration=120
    )
    # 10:30 + 120 min ends 12:30: free; 14:00 + 120 overlaps nothing either.
    assert [s.start.strftime("%H:%M") for s in slots] == ["10:30", "14:00", "15:30", "17:00"]
    blocked = [("d-1", at(MONDAY, 15), at(MONDAY, 16))]
    later = available_slots(
        HOURS, DOCTORS, MONDAY, MONDAY, now=BEFORE, occupancy=blocked, doctor_id="d-1", duration=90
    )
    assert "14:00" not in [s.start.strftime("%H:%M") for s in later]  # 14:00–15:30 overlaps


def test_no_slot_in_the_past() -> None:
    now = at(MONDAY, 10, 30)
    slots = available_slots(HOURS, DOCTORS, MONDAY, MONDAY, now=now, doctor_id="d-2")
    assert [s.start.strftime("%H:%M") for s in slots] == ["14:00", "15:30", "17:00"]


def test_limit_and_range() -> None:
    slots = available_slots(HOURS, DOCTORS, MONDAY, MONDAY + timedelta(days=6), now=BEFORE, limit=3)
    assert len(slots) == 3
    week = available_slots(HOURS, DOCTORS, MONDAY, MONDAY + timedelta(days=6), now=BEFORE)
    assert len(week) == 5 * 5 * 2
    with pytest.raises(InvalidArguments):
        available_slots(HOURS, DOCTORS, MONDAY, MONDAY - timedelta(days=1), now=BEFORE)
    with pytest.raises(InvalidArguments):
        available_slots(HOURS, DOCTORS, MONDAY, MONDAY + timedelta(days=400), now=BEFORE)


def test_slots_serialise_for_the_gateway() -> None:
    slot = Slot(at(MONDAY, 9), "d-1", at(MONDAY, 10, 30))
    assert slot.to_dict() == {
        "doctorId": "d-1",
        "start": "2025-03-03T09:00:00+02:00",
        "end": "2025-03-03T10:30:00+02:00",
        "durationMinutes": 90,
    }


def test_candidate_starts_are_recognised_in_any_offset() -> None:
    assert is_candidate_start(HOURS, datetime(2025, 3, 3, 7, 0, tzinfo=UTC))  # 09:00 local
    assert not is_candidate_start(HOURS, datetime(2025, 3, 3, 8, 0, tzinfo=UTC))
    assert not is_candidate_start(HOURS, at(date(2025, 3, 8), 9))  # Saturday


def test_back_to_back_intervals_do_not_overlap() -> None:
    assert not overlaps(at(MONDAY, 9), at(MONDAY, 10), at(MONDAY, 10), at(MONDAY, 11))
    assert overlaps(at(MONDAY, 9), at(MONDAY, 10, 1), at(MONDAY, 10), at(MONDAY, 11))


occupancy = st.lists(
    st.tuples(
        st.sampled_from(["d-1", "d-2"]),
        st.integers(0, 6 * 24 * 4).map(lambda q: at(MONDAY, 0) + timedelta(minutes=15 * q)),
        st.sampled_from([15, 30, 60, 90, 120]),
    ).map(lambda t: (t[0], t[1], t[1] + timedelta(minutes=t[2]))),
    max_size=15,
)


@given(
    taken=occupancy,
    minutes=st.sampled_from([15, 30, 60, 90, 180]),
    now_offset=st.integers(-2 * 24 * 60, 5 * 24 * 60),
    time_slot=st.sampled_from(["any", "morning", "afternoon", "evening"]),
)
def test_every_offered_slot_is_free_future_and_a_clinic_start(
    taken: list[tuple[str, datetime, datetime]], minutes: int, now_offset: int, time_slot: str
) -> None:
    now = at(MONDAY, 0) + timedelta(minutes=now_offset)
    slots = available_slots(
        HOURS,
        DOCTORS,
        MONDAY,
        MONDAY + timedelta(days=6),
        now=now,
        occupancy=taken,
        duration=minutes,
        time_slot=time_slot,  # type: ignore[arg-type]
    )
    assert slots == sorted(slots)
    for slot in slots:
        assert slot.start > now
        assert is_candidate_start(HOURS, slot.start)
        assert in_time_slot(slot.start.astimezone(TZ).time(), time_slot)  # type: ignore[arg-type]
        assert slot.end - slot.start == timedelta(minutes=minutes)
        assert not any(
            d == slot.doctor_id and overlaps(slot.start, slot.end, s, e) for d, s, e in taken
        )
    # Completeness: every free future clinic start of every doctor is offered.
    offered = {(s.doctor_id, s.start) for s in slots}
    for day in (MONDAY + timedelta(days=i) for i in range(7)):
        for start in candidate_starts(HOURS, day, time_slot):  # type: ignore[arg-type]
            end = start + timedelta(minutes=minutes)
            for doctor in ("d-1", "d-2"):
                free = not any(d == doctor and overlaps(start, end, s, e) for d, s, e in taken)
                assert ((doctor, start) in offered) == (free and start > now)
