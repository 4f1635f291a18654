"""Dates and times of day as people write them, resolved in the clinic's time zone.

Every function reads *folded* text (see ``domain.text.fold``) and a reference day,
so results are deterministic: the caller passes ``now`` once and gets the same
answer every time. Weekday names mean the next occurrence strictly after today
("luni" said on a Monday is a week away); with "viitoare"/"next" they mean that
weekday in next week.
"""

from __future__ import annotations

import calendar
import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

from domain.events import TimeSlot

CLINIC_TZ = ZoneInfo("Europe/Bucharest")
Direction = Literal["past", "future"]


def clinic_today(now: datetime) -> date:
    """The calendar day in Europe/Bucharest at the aware instant ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(CLINIC_TZ).date()


@dataclass(frozen=True)
class DateMatch:
    """A single day found in text, with the words it came from and their offsets."""

    value: date
    start: int
    end: int
    text: str
    # False when the year was inferred ("25 decembrie"), so a range can re-anchor it.
    explicit_year: bool = True


@dataclass(frozen=True)
class RangeMatch:
    """A closed range of days found in text."""

    first: date
    last: date
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SlotMatch:
    """A time of day found in text."""

    slot: TimeSlot
    start: int
    end: int
    text: str


# --- vocabulary ------------------------------------------------------------------------

_MONTH_NAMES: tuple[tuple[str, ...], ...] = (
    ("ianuarie", "ian", "january", "jan"),
    ("februarie", "feb", "february"),
    ("martie", "mar", "march"),
    ("aprilie", "apr", "april"),
    ("mai", "may"),
    ("iunie", "iun", "june", "jun"),
    ("iulie", "iul", "july", "jul"),
    ("august", "aug"),
    ("septembrie", "sept", "sep", "september"),
    ("octombrie", "oct", "october"),
    ("noiembrie", "noi", "nov", "november"),
    ("decembrie", "dec", "december"),
)
_MONTHS: dict[str, int] = {
    name: number for number, names in enumerate(_MONTH_NAMES, start=1) for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
# Month names that are also common words ("mar" = apple, "noi" = we) only count after
# "luna"; "mai" (= more) and "may" (modal) after "în"/"for" too, unless a word follows
# that makes them adverbs ("în mai multe", "for may be").
_AMBIGUOUS_MONTHS = {"mai", "may", "mar", "noi"}
_NOT_A_MONTH_AFTER = re.compile(
    r"\s+(?:mult\w*|putin\w*|bine|tarziu|devreme|repede|des|ales|departe|mare|mic\w*|"
    r"bun\w*|usor|greu|be|have|not|also|need|want)\b"
)

_WEEKDAYS: dict[str, int] = {
    "luni": 0, "lunea": 0, "monday": 0,
    "marti": 1, "martea": 1, "tuesday": 1,
    "miercuri": 2, "miercurea": 2, "wednesday": 2,
    "joi": 3, "joia": 3, "thursday": 3,
    "vineri": 4, "vinerea": 4, "friday": 4,
    "sambata": 5, "simbata": 5, "saturday": 5,
    "duminica": 6, "sunday": 6,
}  # fmt: skip
_WEEKDAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))

_NUMBER_WORDS = {
    "o": 1, "un": 1, "una": 1, "a": 1, "one": 1, "doua": 2, "doi": 2, "two": 2,
    "trei": 3, "three": 3, "patru": 4, "four": 4, "cinci": 5, "five": 5,
    "sase": 6, "six": 6, "sapte": 7, "seven": 7, "zece": 10, "ten": 10,
    "paisprezece": 14, "fourteen": 14,
}  # fmt: skip
_NUMBER_RE = r"\d{1,3}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))

_NEXT = r"(?:viitoare|viitor|urmatoare|urmator|next|coming)"
_THIS = r"(?:asta|aceasta|acesta|curenta|curent|this|current)"
_LAST = r"(?:trecuta|trecut|precedenta|precedent|last|previous)"
_WEEK = r"(?:saptamana|saptamina|sapt|week)"
_MONTH = r"(?:luna|month)"
_YEAR = r"(?:anul|year)"


def _number(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token]


# --- single days -----------------------------------------------------------------------

_RELATIVE_DAYS: tuple[tuple[str, int], ...] = (
    (r"\b(?:poimaine|poimiine|poimaina|day after tomorrow)\b", 2),
    (r"\b(?:maine|miine|tomorrow|tmrw|tomorow)\b", 1),
    (r"\b(?:azi|astazi|today|diseara|tonight|in seara asta)\b", 0),
    (r"\b(?:ieri|yesterday)\b", -1),
)
_IN_N = re.compile(
    rf"\b(?:peste|in|dupa|after)\s+(?P<n>{_NUMBER_RE})\s+"
    r"(?P<unit>zile|zi|days?|saptamani|saptamana|saptamina|weeks?)\b"
)
_N_FROM_NOW = re.compile(
    rf"\b(?P<n>{_NUMBER_RE})\s+(?P<unit>days?|weeks?)\s+from\s+(?:now|today)\b"
)
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC = re.compile(r"(?<![\d:.+/])(\d{1,2})[./](\d{1,2})(?:[./](\d{4}|\d{2}))?(?![\d:]|\.\d)")
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th|-?lea)?\s+(?:of\s+)?({_MONTH_RE})\b\.?(?:,?\s+(\d{{4}}))?"
)
_MONTH_DAY = re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?")
_WEEKDAY = re.compile(rf"\b({_WEEKDAY_RE})\b(?:\s+({_NEXT}))?")
_NEXT_WEEKDAY = re.compile(rf"\b{_NEXT}\s+({_WEEKDAY_RE})\b")
_NEXT_WEEK = re.compile(rf"\b(?:{_WEEK}\s+{_NEXT}|{_NEXT}\s+{_WEEK})\b")
_NEXT_MONTH = re.compile(rf"\b(?:{_MONTH}\s+{_NEXT}|{_NEXT}\s+{_MONTH})\b")
# "3 luni" = three months, not Monday.
_NOT_WEEKDAY_BEFORE = re.compile(rf"\b(?:{_NUMBER_RE}|cateva|ultimele|ultimii|doar)\s+$")


def find_dates(folded: str, today: date, *, direction: Direction = "future") -> list[DateMatch]:
    """Every single day written in ``folded``, in order of appearance.

    ``direction`` says which year a date without one belongs to: the next
    occurrence ("future", for bookings) or the latest past one ("past", for reports).
    """
    found: list[DateMatch] = []
    taken = bytearray(len(folded))  # earlier finders win where mentions overlap
    for finder in (_relative, _in_n, _absolute, _weekdays, _next_period_starts):
        for match in finder(folded, today, direction):
            if not any(taken[match.start : match.end]):
                found.append(match)
                taken[match.start : match.end] = b"\x01" * (match.end - match.start)
    return sorted(found, key=lambda m: m.start)


def find_date(folded: str, today: date, *, direction: Direction = "future") -> DateMatch | None:
    """The first single day written in ``folded``, or None."""
    matches = find_dates(folded, today, direction=direction)
    return matches[0] if matches else None


def _relative(folded: str, today: date, _: Direction) -> list[DateMatch]:
    return [
        DateMatch(today + timedelta(days=offset), m.start(), m.end(), m.group(0))
        for pattern, offset in _RELATIVE_DAYS
        for m in re.finditer(pattern, folded)
    ]


def _in_n(folded: str, today: date, _: Direction) -> list[DateMatch]:
    found = []
    for pattern in (_IN_N, _N_FROM_NOW):
        for m in pattern.finditer(folded):
            days = _number(m.group("n")) * (1 if m.group("unit").startswith(("z", "d")) else 7)
            found.append(DateMatch(today + timedelta(days=days), m.start(), m.end(), m.group(0)))
    return found


def _absolute(folded: str, today: date, direction: Direction) -> list[DateMatch]:
    found: list[DateMatch] = []
    for m in _ISO.finditer(folded):
        _append_valid(found, m, int(m.group(1)), int(m.group(2)), int(m.group(3)), True)
    for m in _DAY_MONTH.finditer(folded):
        year = _year(m.group(3), today, _MONTHS[m.group(2)], int(m.group(1)), direction)
        _append_valid(found, m, year, _MONTHS[m.group(2)], int(m.group(1)), bool(m.group(3)))
    for m in _MONTH_DAY.finditer(folded):
        year = _year(m.group(3), today, _MONTHS[m.group(1)], int(m.group(2)), direction)
        _append_valid(found, m, year, _MONTHS[m.group(1)], int(m.group(2)), bool(m.group(3)))
    for m in _NUMERIC.finditer(folded):
        if re.search(r"\b(?:ora|orele|at)\s*$", folded[: m.start()]):
            continue  # "ora 10.30" is a time of day
        day, month = int(m.group(1)), int(m.group(2))
        year = _year(m.group(3), today, month, day, direction)
        _append_valid(found, m, year, month, day, bool(m.group(3)))
    return found


def _year(written: str | None, today: date, month: int, day: int, direction: Direction) -> int:
    if written:
        return int(written) + (2000 if len(written) == 2 else 0)
    if direction == "future":
        return today.year + (1 if (month, day) < (today.month, today.day) else 0)
    return today.year - (1 if (month, day) > (today.month, today.day) else 0)


def _append_valid(
    found: list[DateMatch], m: re.Match[str], year: int, month: int, day: int, explicit: bool
) -> None:
    try:
        value = date(year, month, day)
    except ValueError:
        return
    found.append(DateMatch(value, m.start(), m.end(), m.group(0), explicit))


def _weekdays(folded: str, today: date, _: Direction) -> list[DateMatch]:
    found: list[DateMatch] = []
    for m in _NEXT_WEEKDAY.finditer(folded):
        found.append(_weekday_match(m, _WEEKDAYS[m.group(1)], today, next_week=True))
    for m in _WEEKDAY.finditer(folded):
        # Only the last few words matter; a bounded look-back keeps long texts linear.
        before = folded[max(0, m.start() - 24) : m.start()]
        if m.group(1) == "luni" and _NOT_WEEKDAY_BEFORE.search(before):
            continue
        found.append(_weekday_match(m, _WEEKDAYS[m.group(1)], today, bool(m.group(2))))
    return found


def _weekday_match(m: re.Match[str], weekday: int, today: date, next_week: bool) -> DateMatch:
    if next_week:
        monday = today + timedelta(days=7 - today.weekday())
        value = monday + timedelta(days=weekday)
    else:
        value = today + timedelta(days=(weekday - today.weekday()) % 7 or 7)
    return DateMatch(value, m.start(), m.end(), m.group(0))


def _next_period_starts(folded: str, today: date, _: Direction) -> list[DateMatch]:
    found = []
    for m in _NEXT_WEEK.finditer(folded):
        monday = today + timedelta(days=7 - today.weekday())
        found.append(DateMatch(monday, m.start(), m.end(), m.group(0)))
    for m in _NEXT_MONTH.finditer(folded):
        first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        found.append(DateMatch(first, m.start(), m.end(), m.group(0)))
    return found


# --- ranges ----------------------------------------------------------------------------


def find_range(folded: str, today: date, *, direction: Direction = "past") -> RangeMatch | None:
    """The range of days ``folded`` asks about, or None.

    Tried in order: two explicit dates ("de la 1 mai până la 15 mai", "between
    2026-05-01 and 2026-05-15"), a day span inside a month ("1-15 mai"), a named
    period ("luna asta", "last week", "ultimele 7 zile", "în aprilie") and finally a
    single day (start = end). Periods are whole calendar periods; with
    ``direction="future"`` a period never starts before today.
    """
    for finder in (_two_dates, _day_span, _month_to_month, _named_period, _month_name, _single_day):
        match = finder(folded, today, direction)
        if match is not None:
            return _clip(match, today) if direction == "future" else match
    return None


def _clip(match: RangeMatch, today: date) -> RangeMatch:
    if match.first >= today or match.last < today:
        return match
    return RangeMatch(today, match.last, match.start, match.end, match.text)


_RANGE_OPEN = r"(?:intre|de la|din|from|between|incepand cu|starting)"
_RANGE_JOIN = r"(?:si|pana\s+(?:la|in|pe)|pana|to|and|until|till|through|-)"


def _two_dates(folded: str, today: date, direction: Direction) -> RangeMatch | None:
    dates = [
        d for d in find_dates(folded, today, direction=direction) if d.text not in {"mai", "may"}
    ]
    for first, second in itertools.pairwise(dates):
        between = folded[first.end : second.start]
        if re.fullmatch(rf"\s*{_RANGE_JOIN}\s*", between):
            if second.value < first.value and _WEEKDAY.fullmatch(second.text):
                second = DateMatch(second.value + timedelta(days=7), second.start, second.end,
                                   second.text)  # fmt: skip
            lo, hi = _anchor_years(first, second, direction)
            text = folded[first.start : second.end]
            return RangeMatch(lo, hi, first.start, second.end, text)
    return None


def _anchor_years(first: DateMatch, second: DateMatch, direction: Direction) -> tuple[date, date]:
    """Put an end written without a year into the other end's year, first before second.

    When neither end has a year, a future range is anchored on its end (so it
    may contain today) and a past range on its start.
    """
    lo, hi = first.value, second.value
    if not first.explicit_year and (second.explicit_year or direction == "future"):
        lo = _replace_year(lo, hi.year)
        if lo > hi:
            lo = _replace_year(lo, hi.year - 1)
    elif not second.explicit_year:
        hi = _replace_year(hi, lo.year)
        if hi < lo:
            hi = _replace_year(hi, lo.year + 1)
    return (lo, hi) if lo <= hi else (hi, lo)


def _replace_year(day: date, year: int) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return day.replace(year=year, day=28)


_SPAN_IN_MONTH = re.compile(
    rf"\b(\d{{1,2}})\s*{_RANGE_JOIN}\s*(\d{{1,2}})\s+({_MONTH_RE})\b(?:\s+(\d{{4}}))?"
)
_MONTH_SPAN = re.compile(
    rf"\b({_MONTH_RE})\s+(\d{{1,2}})\s*{_RANGE_JOIN}\s*(\d{{1,2}})\b(?:,?\s+(\d{{4}}))?"
)


def _day_span(folded: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _SPAN_IN_MONTH.search(folded)
    if m:
        days, month, year = (int(m.group(1)), int(m.group(2))), _MONTHS[m.group(3)], m.group(4)
    else:
        m = _MONTH_SPAN.search(folded)
        if not m:
            return None
        days, month, year = (int(m.group(2)), int(m.group(3))), _MONTHS[m.group(1)], m.group(4)
    anchor_day = days[1] if direction == "future" else days[0]
    resolved_year = _year(year, today, month, anchor_day, direction)
    try:
        first, last = date(resolved_year, month, days[0]), date(resolved_year, month, days[1])
    except ValueError:
        return None
    return RangeMatch(min(first, last), max(first, last), m.start(), m.end(), m.group(0))


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _shift_month(day: date, months: int) -> tuple[int, int]:
    index = day.year * 12 + day.month - 1 + months
    return index // 12, index % 12 + 1


def _week(today: date, weeks: int) -> tuple[date, date]:
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)
    return monday, monday + timedelta(days=6)


def _quarter(today: date) -> tuple[date, date]:
    first_month = (today.month - 1) // 3 * 3 + 1
    return date(today.year, first_month, 1), _month_bounds(today.year, first_month + 2)[1]


def _periods(today: date) -> list[tuple[str, tuple[date, date]]]:
    return [
        (rf"\b(?:{_MONTH}\s+{_THIS}|{_THIS}\s+{_MONTH}|month to date)\b",
         _month_bounds(today.year, today.month)),
        (rf"\b(?:{_MONTH}\s+{_LAST}|{_LAST}\s+{_MONTH})\b",
         _month_bounds(*_shift_month(today, -1))),
        (rf"\b(?:{_MONTH}\s+{_NEXT}|{_NEXT}\s+{_MONTH})\b",
         _month_bounds(*_shift_month(today, 1))),
        (rf"\b(?:{_WEEK}\s+{_THIS}|{_THIS}\s+{_WEEK})\b", _week(today, 0)),
        (rf"\b(?:{_WEEK}\s+{_LAST}|{_LAST}\s+{_WEEK})\b", _week(today, -1)),
        (rf"\b(?:{_WEEK}\s+{_NEXT}|{_NEXT}\s+{_WEEK})\b", _week(today, 1)),
        (rf"\b(?:{_YEAR}\s+{_THIS}|{_THIS}\s+{_YEAR}|year to date|ytd)\b",
         (date(today.year, 1, 1), date(today.year, 12, 31))),
        (rf"\b(?:{_YEAR}\s+{_LAST}|{_LAST}\s+{_YEAR})\b",
         (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))),
        (r"\b(?:trimestrul\s+(?:asta|acesta|curent)|this quarter|current quarter)\b",
         _quarter(today)),
        (r"\b(?:ultima\s+saptamana|past week|last seven days)\b",
         (today - timedelta(days=6), today)),
        (r"\b(?:ultima\s+luna|past month)\b", (today - timedelta(days=29), today)),
    ]  # fmt: skip


_LAST_N = re.compile(
    rf"\b(?:ultimele|ultimii|last|past|in the last|in ultimele)\s+(?P<n>{_NUMBER_RE})\s+"
    r"(?:de\s+)?(?P<unit>zile|days|saptamani|weeks|luni|months)\b"
)


def _named_period(folded: str, today: date, _: Direction) -> RangeMatch | None:
    hits = []
    for pattern, (first, last) in _periods(today):
        m = re.search(pattern, folded)
        if m:
            hits.append(RangeMatch(first, last, m.start(), m.end(), m.group(0)))
    n = _LAST_N.search(folded)
    if n:
        unit = n.group("unit")
        days = _number(n.group("n")) * (1 if unit in {"zile", "days"} else 7)
        if unit in {"luni", "months"}:
            days = _number(n.group("n")) * 30
        hits.append(RangeMatch(today - timedelta(days=days - 1), today, n.start(), n.end(),
                               n.group(0)))  # fmt: skip
    return min(hits, key=lambda h: h.start) if hits else None


_MONTH_TO_MONTH = re.compile(
    rf"\b(?:{_RANGE_OPEN})\s+(?:luna\s+)?({_MONTH_RE})(?:\s+(\d{{4}}))?\s+{_RANGE_JOIN}\s+"
    rf"(?:luna\s+)?({_MONTH_RE})(?:\s+(\d{{4}}))?\b"
)


def _month_to_month(folded: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _MONTH_TO_MONTH.search(folded)
    if m is None:
        return None
    first_month, last_month = _MONTHS[m.group(1)], _MONTHS[m.group(3)]
    wraps = first_month > last_month  # "din noiembrie până în februarie"
    if m.group(4):
        last_year = int(m.group(4))
    elif m.group(2):
        last_year = int(m.group(2)) + wraps
    elif direction == "future":
        last_year = today.year + (last_month < today.month)
    else:
        last_year = today.year - (first_month > today.month) + wraps
    first_year = int(m.group(2)) if m.group(2) else last_year - wraps
    first = _month_bounds(first_year, first_month)[0]
    last = _month_bounds(last_year, last_month)[1]
    return RangeMatch(first, last, m.start(), m.end(), m.group(0))


_IN_MONTH = re.compile(rf"\b(?:luna|in|din|pe|for|during|of)\s+({_MONTH_RE})\b(?:\s+(\d{{4}}))?")


def _not_a_month(m: re.Match[str], folded: str) -> bool:
    name = m.group(1)
    if name not in _AMBIGUOUS_MONTHS or m.group(0).startswith("luna"):
        return False
    return name not in {"mai", "may"} or bool(_NOT_A_MONTH_AFTER.match(folded, m.end(1)))


def _month_name(folded: str, today: date, direction: Direction) -> RangeMatch | None:
    for m in _IN_MONTH.finditer(folded):
        if _not_a_month(m, folded):
            continue
        month = _MONTHS[m.group(1)]
        year = int(m.group(2)) if m.group(2) else _year(None, today, month, 1, direction)
        if direction == "future" and not m.group(2) and month == today.month:
            year = today.year
        first, last = _month_bounds(year, month)
        return RangeMatch(first, last, m.start(), m.end(), m.group(0))
    return None


def _single_day(folded: str, today: date, direction: Direction) -> RangeMatch | None:
    match = find_date(folded, today, direction=direction)
    if match is None:
        return None
    return RangeMatch(match.value, match.value, match.start, match.end, match.text)


# --- time of day -----------------------------------------------------------------------

_SLOT_WORDS: tuple[tuple[TimeSlot, str], ...] = (
    ("morning", r"\b(?:dimineat\w*|diminetii|morning|before noon|before lunch|inainte de pranz)\b"),
    (
        "afternoon",
        r"\b(?:dupa[\s-]*amiaz\w*|dupa[\s-]*masa|dupa[\s-]*pranz|afternoon|after lunch)\b",
    ),
    ("evening", r"\b(?:seara|serii|diseara|evening|tonight|dupa program|after work)\b"),
    ("any", r"\b(?:oricand|orice ora|anytime|any time)\b"),
)
_CLOCK = re.compile(
    r"\b(?:(?:la\s+)?ora|orele|at|around|pe la|in jur de)\s*(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?\b"
    r"|\b(\d{1,2}):(\d{2})\b|\b(\d{1,2})\s*(am|pm)\b"
)


def find_time_slot(folded: str) -> SlotMatch | None:
    """The preferred time of day in ``folded``: a named part of day or a clock time."""
    hits = [
        SlotMatch(slot, m.start(), m.end(), m.group(0))
        for slot, pattern in _SLOT_WORDS
        for m in re.finditer(pattern, folded)
    ]
    for m in _CLOCK.finditer(folded):
        slot = _slot_of_clock(m)
        if slot is not None:
            hits.append(SlotMatch(slot, m.start(), m.end(), m.group(0)))
    return min(hits, key=lambda h: h.start) if hits else None


def _slot_of_clock(m: re.Match[str]) -> TimeSlot | None:
    hour = int(m.group(1) or m.group(4) or m.group(6))
    if (m.group(3) or m.group(7)) == "pm" and hour < 12:
        hour += 12
    if 6 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour <= 22:
        return "evening"
    return None


EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def check_calendar_range(day: date) -> date:
    """A clinic date: refuses the calendar's edges (0001-01-01, 9999-12-31), where
    date arithmetic overflows, with a message that says what is accepted."""
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE}")
    return day


ClinicDate = Annotated[date, AfterValidator(check_calendar_range)]
"""A date argument of the clinic's functions, commands and queries."""
