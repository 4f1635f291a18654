"""Dates, ranges and times of day as written in Romanian and English."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.dates import clinic_today, find_date, find_range, find_time_slot
from domain.text import fold

TODAY = date(2026, 5, 13)  # a Wednesday


def day(text: str, today: date = TODAY) -> str | None:
    match = find_date(fold(text), today)
    return match.value.isoformat() if match else None


def span(text: str, direction: str = "past") -> tuple[str, str] | None:
    match = find_range(fold(text), TODAY, direction=direction)  # type: ignore[arg-type]
    return (match.first.isoformat(), match.last.isoformat()) if match else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("azi", "2026-05-13"),
        ("astăzi", "2026-05-13"),
        ("today", "2026-05-13"),
        ("mâine", "2026-05-14"),
        ("maine", "2026-05-14"),
        ("tomorrow", "2026-05-14"),
        ("poimâine", "2026-05-15"),
        ("the day after tomorrow", "2026-05-15"),
        ("luni", "2026-05-18"),
        ("marți", "2026-05-19"),
        ("miercuri", "2026-05-20"),  # today is Wednesday: the next one
        ("joi", "2026-05-14"),
        ("sâmbătă", "2026-05-16"),
        ("duminică", "2026-05-17"),
        ("Friday", "2026-05-15"),
        ("vinerea viitoare", "2026-05-22"),
        ("next Monday", "2026-05-18"),
        ("săptămâna viitoare", "2026-05-18"),
        ("next week", "2026-05-18"),
        ("luna viitoare", "2026-06-01"),
        ("peste 3 zile", "2026-05-16"),
        ("în 2 săptămâni", "2026-05-27"),
        ("peste o săptămână", "2026-05-20"),
        ("25 decembrie", "2026-12-25"),
        ("25.12", "2026-12-25"),
        ("25.12.2026", "2026-12-25"),
        ("25/12/27", "2027-12-25"),
        ("2026-12-25", "2026-12-25"),
        ("1 mai", "2027-05-01"),  # already past this year
        ("on May 20th", "2026-05-20"),
        ("June 3", "2026-06-03"),
        ("pe 2 iunie", "2026-06-02"),
    ],
)
def test_single_days(text: str, expected: str) -> None:
    assert day(text) == expected


@pytest.mark.parametrize(
    "text",
    ["acum 3 luni", "nu mai pot", "la ora 14.30", "31.04", "pe mine", "in mai multe zile", ""],
)
def test_words_that_are_not_days(text: str) -> None:
    assert day(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("luna asta", ("2026-05-01", "2026-05-31")),
        ("this month", ("2026-05-01", "2026-05-31")),
        ("luna trecută", ("2026-04-01", "2026-04-30")),
        ("săptămâna trecută", ("2026-05-04", "2026-05-10")),
        ("last week", ("2026-05-04", "2026-05-10")),
        ("săptămâna asta", ("2026-05-11", "2026-05-17")),
        ("anul acesta", ("2026-01-01", "2026-12-31")),
        ("anul trecut", ("2025-01-01", "2025-12-31")),
        ("ultimele 7 zile", ("2026-05-07", "2026-05-13")),
        ("last 30 days", ("2026-04-14", "2026-05-13")),
        ("ieri", ("2026-05-12", "2026-05-12")),
        ("în aprilie", ("2026-04-01", "2026-04-30")),
        ("in June", ("2025-06-01", "2025-06-30")),  # reports look back
        ("for May", ("2026-05-01", "2026-05-31")),
        ("între 1 și 15 mai", ("2026-05-01", "2026-05-15")),
        ("de la 1 mai până la 15 mai", ("2026-05-01", "2026-05-15")),
        ("from 2026-04-01 to 2026-04-30", ("2026-04-01", "2026-04-30")),
        ("from 20 December to 5 January", ("2025-12-20", "2026-01-05")),
        ("din ianuarie până în martie", ("2026-01-01", "2026-03-31")),
        ("din noiembrie până în februarie", ("2025-11-01", "2026-02-28")),
        ("this quarter", ("2026-04-01", "2026-06-30")),
    ],
)
def test_ranges_for_reports(text: str, expected: tuple[str, str]) -> None:
    assert span(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("săptămâna asta", ("2026-05-13", "2026-05-17")),  # no slots in the past
        ("săptămâna viitoare", ("2026-05-18", "2026-05-24")),
        ("mâine", ("2026-05-14", "2026-05-14")),
        ("în aprilie", ("2027-04-01", "2027-04-30")),
        ("luna iunie", ("2026-06-01", "2026-06-30")),
        ("de luni până vineri", ("2026-05-18", "2026-05-22")),
        ("1-15 iunie", ("2026-06-01", "2026-06-15")),
        ("June 8-12", ("2026-06-08", "2026-06-12")),
    ],
)
def test_ranges_for_availability(text: str, expected: tuple[str, str]) -> None:
    assert span(text, "future") == expected


def test_no_range() -> None:
    assert span("ce mai faceți") is None


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("dimineața", "morning"),
        ("de dimineata", "morning"),
        ("tomorrow morning", "morning"),
        ("după-amiază", "afternoon"),
        ("dupa amiaza", "afternoon"),
        ("seara", "evening"),
        ("diseară", "evening"),
        ("oricând", "any"),
        ("la ora 10", "morning"),
        ("la 14:00", "afternoon"),
        ("at 5pm", "evening"),
        ("ora 18.30", "evening"),
    ],
)
def test_time_of_day(text: str, slot: str) -> None:
    found = find_time_slot(fold(text))
    assert found is not None and found.slot == slot


def test_no_time_of_day() -> None:
    assert find_time_slot(fold("pe 25 mai")) is None
    assert find_time_slot(fold("la ora 3")) is None  # 3 a.m. is no clinic slot


def test_clinic_today_uses_bucharest_across_dst() -> None:
    assert clinic_today(datetime(2026, 3, 28, 22, 30, tzinfo=UTC)) == date(2026, 3, 29)
    assert clinic_today(datetime(2026, 10, 24, 21, 30, tzinfo=UTC)) == date(2026, 10, 25)
    assert clinic_today(datetime(2026, 7, 1, 20, 59, tzinfo=UTC)) == date(2026, 7, 1)
    with pytest.raises(ValueError):
        clinic_today(datetime(2026, 7, 1, 12, 0))


_WEEKDAYS = ["luni", "marți", "miercuri", "joi", "vineri", "sâmbătă", "duminică"]


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)), st.integers(0, 6))
def test_a_weekday_is_the_next_one_within_a_week(today: date, weekday: int) -> None:
    found = find_date(fold(_WEEKDAYS[weekday]), today)
    assert found is not None
    assert found.value.weekday() == weekday
    assert timedelta(days=1) <= found.value - today <= timedelta(days=7)


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)))
def test_relative_days_follow_the_reference_day(today: date) -> None:
    for word, offset in (("azi", 0), ("mâine", 1), ("poimâine", 2), ("ieri", -1)):
        found = find_date(fold(word), today)
        assert found is not None and found.value == today + timedelta(days=offset)
    for text in ("luna asta", "săptămâna trecută", "anul acesta", "ultimele 10 zile"):
        found_range = find_range(fold(text), today)
        assert found_range is not None and found_range.first <= found_range.last
