"""Days, ranges and times of day the shared ``domain.dates`` readers leave out.

``find_day``, ``find_span`` and ``find_slot`` run ``domain.dates`` first and add
what people also write to a clinic: a day of the month alone ("on the 3rd",
"pe 3", "în data de 21"), "într-o săptămână", the weekend, a weekday of next week
("săptămâna viitoare marți"), a week or half of a month ("first week of May",
"prima săptămână din iunie"), open ranges ("până vineri", "next 3 days",
"de luni încoace", "last quarter") and clock times without "ora" ("la 9",
"after 5pm", "la prânz"). Every reader takes folded text and a reference day, so
results stay deterministic.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from functools import lru_cache

from domain.dates import (
    DateMatch,
    Direction,
    RangeMatch,
    SlotMatch,
    find_dates,
    find_range,
    find_time_slot,
)
from domain.events import TimeSlot

# Patterns compiled once and kept (the ``re`` module's own cache is bounded and shared).
_rx = lru_cache(maxsize=None)(re.compile)

_MONTHS: dict[str, int] = {
    name: number
    for number, names in enumerate(
        (
            ("ianuarie", "january", "ian", "jan"),
            ("februarie", "february", "feb"),
            ("martie", "march"),
            ("aprilie", "april", "apr"),
            ("mai", "may"),
            ("iunie", "june", "iun", "jun"),
            ("iulie", "july", "iul", "jul"),
            ("august", "aug"),
            ("septembrie", "september", "sept", "sep"),
            ("octombrie", "october", "oct"),
            ("noiembrie", "november", "nov"),
            ("decembrie", "december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAYS: dict[str, int] = {
    "luni": 0, "lunea": 0, "monday": 0, "marti": 1, "martea": 1, "tuesday": 1,
    "miercuri": 2, "miercurea": 2, "wednesday": 2, "joi": 3, "joia": 3, "thursday": 3,
    "vineri": 4, "vinerea": 4, "friday": 4, "sambata": 5, "simbata": 5, "saturday": 5,
    "duminica": 6, "sunday": 6,
}  # fmt: skip
_WEEKDAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_NUMBERS = {
    "o": 1, "un": 1, "una": 1, "a": 1, "one": 1, "doua": 2, "doi": 2, "two": 2, "trei": 3,
    "three": 3, "patru": 4, "four": 4, "cinci": 5, "five": 5, "sase": 6, "six": 6,
    "sapte": 7, "seven": 7, "zece": 10, "ten": 10, "cateva": 3, "few": 3, "a few": 3,
}  # fmt: skip
_NUMBER_RE = r"\d{1,2}|" + "|".join(sorted(_NUMBERS, key=len, reverse=True))
_NEXT = r"(?:viitoare|viitor|urmatoare|urmator|next|coming)"
_WEEK = r"(?:saptamana|saptamina|week)"
_UNITS_AFTER_NUMBER = (
    rf"\s*(?:[:./-]\d|%|h\b|ore\b|ora\b|hours?\b|min\w*|zile\b|zi\b|days?\b|lei\b|ron\b|"
    rf"eur\w*|luni\b|months?\b|saptamani\b|weeks?\b|ani\b|years?\b|am\b|pm\b|of\b|din\b|"
    rf"a lunii\b|(?:{_MONTH_RE})\b|persoane|people|leaduri|leads)"
)


def _number(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBERS[token]


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# --- single days ----------------------------------------------------------------------------

_DAY_OF_MONTH = re.compile(
    r"\b(?:on the|on|the|pe|pe data de|in data de|data de|din data de|pe data)\s+"
    r"(\d{1,2})(?:st|nd|rd|th|-?lea|-a)?\b"
    rf"(?!{_UNITS_AFTER_NUMBER})"
)
_IN_ONE = re.compile(
    r"\b(?:intr-o|intr-un|peste o|peste un|in a|in one|in an?|over a)\s+"
    r"(saptamana|zi|luna|week|day|month)\b"
)
_WEEKEND = re.compile(
    r"\b(?:(?:in|la|this|next|the|pe|de)\s+)?weekend(?:ul)?"
    r"(?:\s+(asta|acesta|viitor|urmator|trecut))?\b"
)
_NEXT_WEEK_DAY = re.compile(
    rf"\b(?:{_WEEK}\s+{_NEXT}|{_NEXT}\s+{_WEEK})[\s,]+(?:pe\s+|on\s+|in\s+)?({_WEEKDAY_RE})\b"
    rf"|\b({_WEEKDAY_RE})\s+(?:din|in|of|from)\s+(?:{_WEEK}\s+{_NEXT}|{_NEXT}\s+{_WEEK})\b"
)


_PART_OF_MONTH = re.compile(
    r"\b(?:(?:la |pe |spre |catre |towards? (?:the )?|at the |by the )?"
    r"(?:(sfarsitul|finalul|end of)|(inceputul|beginning of|start of)|(mijlocul|middle of|mid))"
    r"\s+(?:(?:of\s+)?the\s+)?(lunii|month|saptamanii|week)"
    r"(?:\s+(viitoare|next|urmatoare|asteia|acesteia|this))?)\b"
    r"|\b(?:(end|beginning|start|middle) of (next|this|the) (month|week))\b"
)


def _part_of_month(text: str, today: date) -> list[DateMatch]:
    found = []
    for m in _PART_OF_MONTH.finditer(text):
        part = (
            "end"
            if (m.group(1) or m.group(6) == "end")
            else ("start" if (m.group(2) or m.group(6) in ("beginning", "start")) else "middle")
        )
        unit = m.group(4) or m.group(8)
        following = (m.group(5) or m.group(7) or "") in ("viitoare", "next", "urmatoare")
        if unit in ("lunii", "month"):
            first = today.replace(day=1)
            if following:
                first = _add_months(first, 1)
            last = _month_bounds(first.year, first.month)[1]
            value = {"end": last, "start": first, "middle": first.replace(day=15)}[part]
        else:
            monday = today - timedelta(days=today.weekday()) + timedelta(days=7 if following else 0)
            value = {"end": monday + timedelta(days=4), "start": monday,
                     "middle": monday + timedelta(days=2)}[part]  # fmt: skip
        if value < today:
            value = today
        found.append(DateMatch(value, m.start(), m.end(), m.group(0)))
    return found


def _day_of_month(text: str, today: date, direction: Direction) -> list[DateMatch]:
    found = []
    for m in _DAY_OF_MONTH.finditer(text):
        day = int(m.group(1))
        if not 1 <= day <= 31:
            continue
        if direction == "future":
            candidates = [today.replace(day=1), _add_months(today.replace(day=1), 1)]
        else:
            candidates = [today.replace(day=1), _add_months(today.replace(day=1), -1)]
        for first in candidates:
            if day > calendar.monthrange(first.year, first.month)[1]:
                continue
            value = first.replace(day=day)
            if (direction == "future" and value >= today) or (
                direction == "past" and value <= today
            ):
                found.append(DateMatch(value, m.start(), m.end(), m.group(0), False))
                break
    return found


def _in_one(text: str, today: date) -> list[DateMatch]:
    found = []
    for m in _IN_ONE.finditer(text):
        unit = m.group(1)
        if unit in ("luna", "month"):
            value = _add_months(today, 1)
        else:
            value = today + timedelta(days=7 if unit in ("saptamana", "week") else 1)
        found.append(DateMatch(value, m.start(), m.end(), m.group(0)))
    return found


def _saturday(today: date, which: str | None, direction: Direction) -> date:
    if which == "trecut" or (which is None and direction == "past"):
        return today - timedelta(days=(today.weekday() - 5) % 7 or 7)
    if which in ("viitor", "urmator"):
        return today + timedelta(days=7 - today.weekday() + 5)
    return today + timedelta(days=(5 - today.weekday()) % 7)


def _weekends(text: str, today: date, direction: Direction) -> list[DateMatch]:
    found = []
    for m in _WEEKEND.finditer(text):
        which = m.group(1)
        if which is None and re.match(r"(?:next|the next)\b", m.group(0)):
            which = "viitor"
        found.append(DateMatch(_saturday(today, which, direction), m.start(), m.end(), m.group(0)))
    return found


def _next_week_days(text: str, today: date) -> list[DateMatch]:
    monday = today + timedelta(days=7 - today.weekday())
    return [
        DateMatch(
            monday + timedelta(days=_WEEKDAYS[m.group(1) or m.group(2)]),
            m.start(),
            m.end(),
            m.group(0),
        )
        for m in _NEXT_WEEK_DAY.finditer(text)
    ]


def _last_weekday(match: DateMatch, today: date) -> DateMatch:
    """In a look back, a bare weekday is the latest one ("since Monday" on a Wednesday)."""
    if match.value <= today or match.text not in _WEEKDAYS:
        return match
    value = match.value
    while value > today:
        value -= timedelta(days=7)
    return DateMatch(value, match.start, match.end, match.text, match.explicit_year)


def _dated_weekdays(days: list[DateMatch], text: str) -> list[DateMatch]:
    """ "vineri 22 mai", "Tuesday the 19th": a weekday followed by its date is that date."""
    result: list[DateMatch] = []
    for day in days:
        previous = result[-1] if result else None
        if (
            previous is not None
            and previous.text in _WEEKDAYS
            and day.text not in _WEEKDAYS
            and re.fullmatch(r"[\s,]*(?:the\s+|pe\s+)?", text[previous.end : day.start])
        ):
            result[-1] = DateMatch(
                day.value, previous.start, day.end, text[previous.start : day.end],
                day.explicit_year,
            )  # fmt: skip
            continue
        result.append(day)
    return result


def _merge(base: list[DateMatch], extra: list[DateMatch]) -> list[DateMatch]:
    """Add ``extra`` matches: one covering base matches replaces them; a partial overlap loses."""
    merged = list(base)
    for match in sorted(extra, key=lambda m: (m.start, -(m.end - m.start))):
        overlapping = [b for b in merged if b.start < match.end and match.start < b.end]
        if all(match.start <= b.start and b.end <= match.end for b in overlapping) and not any(
            (b.start, b.end) == (match.start, match.end) for b in overlapping
        ):
            merged = [b for b in merged if b not in overlapping] + [match]
    return sorted(merged, key=lambda m: m.start)


@lru_cache(maxsize=2048)
def find_days(text: str, today: date, *, direction: Direction = "future") -> tuple[DateMatch, ...]:
    """Every day written in ``text``, in order: ``domain.dates.find_dates`` and the extras."""
    base = find_dates(text, today, direction=direction)
    if direction == "past":
        base = [_last_weekday(m, today) for m in base]
    extra = (
        _next_week_days(text, today)
        + _weekends(text, today, direction)
        + _in_one(text, today)
        + _part_of_month(text, today)
        + _day_of_month(text, today, direction)
    )
    merged = _merge(base, extra) if extra else list(base)
    return tuple(_dated_weekdays(merged, text))


def find_day(text: str, today: date, *, direction: Direction = "future") -> DateMatch | None:
    """The first day written in ``text``, or None."""
    days = find_days(text, today, direction=direction)
    return days[0] if days else None


# --- ranges -------------------------------------------------------------------------------

_ORDINAL_WEEK = re.compile(
    r"\b(?:(prima|first|1st)|(a doua|second|2nd)|(a treia|third|3rd)|(a patra|fourth|4th)|"
    r"(ultima|last|final))\s+(?:saptamana|saptamina|week)\s+(?:din|a|of|in|from)\s+"
    rf"(?:luna\s+|lunii\s+)?(?:({_MONTH_RE})\b(?:\s+(\d{{4}}))?|(luna asta|lunii acesteia|"
    r"this month|luna curenta|luna trecuta|lunii trecute|last month|luna viitoare|"
    r"lunii viitoare|next month))"
)
_HALF = re.compile(
    r"\b(?:(prima|first)|(a doua|second|last))\s+(?:jumatate|half)\s+(?:a|of|din)\s+"
    rf"(?:lunii\s+|luna\s+)?(?:({_MONTH_RE})\b(?:\s+(\d{{4}}))?|(lunii|luna|the month|"
    r"this month|luna asta|lunii acesteia))"
)
_NEXT_N = re.compile(
    r"\b(?:(?:in\s+)?(?:the\s+)?(?:next|coming|following)|(?:in\s+)?urmatoarele|"
    r"(?:in\s+)?urmatorii)\s+"
    rf"(?:(?P<n>{_NUMBER_RE})\s+)?(?:de\s+)?(?P<unit>zile|days|saptamani|weeks)\b"
    r"|\bzilele\s+(?:urmatoare|ce vin)\b|\b(?:restul|rest of the|rest of)\s+"
    r"(?P<rest>saptamanii|week|lunii|month)\b"
)
_UNTIL = re.compile(
    r"\b(?:pana|until|till|through|thru|by|before|inainte de)\s+(?:pe\s+|la\s+|in\s+|on\s+)?"
)
_SINCE = re.compile(r"\b(?:since|de|incepand cu|incepand de|starting)\s+(?:la\s+|from\s+|on\s+)?")
_SINCE_TAIL = re.compile(r"\s*(?:incoace|pana acum|pana azi|pana astazi|to date|until now)\b")
_QUARTER = re.compile(
    r"\b(?:(trimestrul trecut|last quarter|previous quarter|trimestrul precedent)|"
    r"(?:q|t)([1-4])(?:\s+(\d{4}))?|(primul|first)\s+(?:trimestru|quarter))\b"
)


def _month_year(name: str, year: str | None, today: date, direction: Direction) -> int:
    if year:
        return int(year)
    month = _MONTHS[name]
    if direction == "future":
        return today.year + (1 if month < today.month else 0)
    return today.year - (1 if month > today.month else 0)


def _relative_month(phrase: str, today: date) -> tuple[int, int]:
    if any(w in phrase for w in ("trecut", "last")):
        shifted = _add_months(today.replace(day=1), -1)
    elif any(w in phrase for w in ("viitoare", "next")):
        shifted = _add_months(today.replace(day=1), 1)
    else:
        shifted = today
    return shifted.year, shifted.month


def _ordinal_week(text: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _ORDINAL_WEEK.search(text)
    if m is None:
        return None
    if m.group(6):
        month = _MONTHS[m.group(6)]
        year = _month_year(m.group(6), m.group(7), today, direction)
    else:
        year, month = _relative_month(m.group(8), today)
    first, last = _month_bounds(year, month)
    index = next(i for i in range(5) if m.group(i + 1))
    if index == 4:
        start = last - timedelta(days=6)
    else:
        start = first + timedelta(days=7 * index)
        last = start + timedelta(days=6)
    return RangeMatch(start, last, m.start(), m.end(), m.group(0))


def _half(text: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _HALF.search(text)
    if m is None:
        return None
    if m.group(3):
        month = _MONTHS[m.group(3)]
        year = _month_year(m.group(3), m.group(4), today, direction)
    else:
        year, month = today.year, today.month
    first, last = _month_bounds(year, month)
    if m.group(1):
        last = first + timedelta(days=14)
    else:
        first = first + timedelta(days=15)
    return RangeMatch(first, last, m.start(), m.end(), m.group(0))


def _weekend_range(text: str, today: date, direction: Direction) -> RangeMatch | None:
    weekends = _weekends(text, today, direction)
    if not weekends:
        return None
    saturday = weekends[0]
    return RangeMatch(
        saturday.value, saturday.value + timedelta(days=1), saturday.start, saturday.end,
        saturday.text,
    )  # fmt: skip


def _next_n(text: str, today: date, direction: Direction) -> RangeMatch | None:
    if direction != "future":
        return None
    m = _NEXT_N.search(text)
    if m is None:
        return None
    if m.group("rest"):
        if m.group("rest") in ("saptamanii", "week"):
            last = today + timedelta(days=6 - today.weekday())
        else:
            last = _month_bounds(today.year, today.month)[1]
        return RangeMatch(today, last, m.start(), m.end(), m.group(0))
    unit = m.group("unit") or "zile"
    count = _number(m.group("n")) if m.group("n") else (1 if unit in ("saptamani", "weeks") else 7)
    days = count * (7 if unit in ("saptamani", "weeks") else 1)
    return RangeMatch(today, today + timedelta(days=days - 1), m.start(), m.end(), m.group(0))


def _until(text: str, today: date, direction: Direction) -> RangeMatch | None:
    if direction != "future":
        return None
    for m in _UNTIL.finditer(text):
        day = find_day(text[m.end() :], today, direction="future")
        if day is not None and day.start == 0 and day.value >= today:
            end = m.end() + day.end
            return RangeMatch(today, day.value, m.start(), end, text[m.start() : end])
    return None


def _since(text: str, today: date, direction: Direction) -> RangeMatch | None:
    if direction != "past":
        return None
    for m in _SINCE.finditer(text):
        day = find_day(text[m.end() :], today, direction="past")
        if day is None or day.start != 0 or day.value > today:
            continue
        end = m.end() + day.end
        tail = _SINCE_TAIL.match(text, end)
        if m.group(0).startswith("de") and tail is None:
            continue  # "de luni" alone may mean "for Monday"
        if tail:
            end = tail.end()
        return RangeMatch(day.value, today, m.start(), end, text[m.start() : end])
    return None


def _quarter(text: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _QUARTER.search(text)
    if m is None:
        return None
    if m.group(1):
        quarter_start = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        first = _add_months(quarter_start, -3)
    else:
        number = int(m.group(2)) if m.group(2) else 1
        year = int(m.group(3)) if m.group(3) else today.year
        first = date(year, 3 * number - 2, 1)
    last = _add_months(first, 3) - timedelta(days=1)
    return RangeMatch(first, last, m.start(), m.end(), m.group(0))


_PERIOD_START = re.compile(
    r"\b(?:de la|since|from|incepand cu)\s+(?:inceputul|the (?:start|beginning) of)\s+"
    r"(?:(lunii|the month|this month|lunii acesteia)|(anului|the year|this year)|"
    r"(saptamanii|the week|this week))\b"
)
_MONTH_ALONE = re.compile(
    rf"\b(?:(?:pentru|pt|until|till|over|across|throughout|from|starting)\s+(?:luna\s+)?)?"
    rf"(?P<m>{_MONTH_RE})\b(?:\s+(?P<y>\d{{4}}))?(?!\s*\d)"
)
_YEAR_ONLY = re.compile(r"\b(?:in|pe|for|din|during|anul|of|year|over)\s+(20\d{2})\b(?!\s*[-./]\d)")


def _period_start(text: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _PERIOD_START.search(text)
    if m is None or direction != "past":
        return None
    if m.group(1):
        first = today.replace(day=1)
    elif m.group(2):
        first = date(today.year, 1, 1)
    else:
        first = today - timedelta(days=today.weekday())
    return RangeMatch(first, today, m.start(), m.end(), m.group(0))


def _month_alone(text: str, today: date, direction: Direction) -> RangeMatch | None:
    """A month named alone ("raport leaduri aprilie", "for April"); never "mai"/"may"."""
    for m in _MONTH_ALONE.finditer(text):
        name = m.group("m")
        if len(name) < 4:
            continue  # "mai" and "may" are words too; "ian", "feb" are too short to trust
        year = int(m.group("y")) if m.group("y") else _month_year(name, None, today, direction)
        if direction == "future" and not m.group("y") and _MONTHS[name] == today.month:
            year = today.year
        first, last = _month_bounds(year, _MONTHS[name])
        return RangeMatch(first, last, m.start(), m.end(), m.group(0))
    return None


def _year_only(text: str, today: date, direction: Direction) -> RangeMatch | None:
    m = _YEAR_ONLY.search(text)
    if m is None:
        return None
    year = int(m.group(1))
    return RangeMatch(date(year, 1, 1), date(year, 12, 31), m.start(), m.end(), m.group(0))


def _clip(match: RangeMatch, today: date) -> RangeMatch:
    if match.first >= today or match.last < today:
        return match
    return RangeMatch(today, match.last, match.start, match.end, match.text)


_RANGE_FINDERS = (
    _ordinal_week,
    _half,
    _quarter,
    _next_n,
    _until,
    _since,
    _weekend_range,
    _period_start,
    _year_only,
)


@lru_cache(maxsize=2048)
def find_span(text: str, today: date, *, direction: Direction = "past") -> RangeMatch | None:
    """The range of days ``text`` asks about: the extras, else ``domain.dates.find_range``.

    An extra wins when it starts no later than the shared reader's answer (it is
    the more specific reading of the same words, e.g. "first week of May" over "May");
    a single day read by ``find_day`` wins when it covers the answer's words
    ("săptămâna viitoare marți", "vineri 22 mai"); a month named alone ("raport
    aprilie") is the last resort.
    """
    base = find_range(text, today, direction=direction)
    extras = [e for e in (finder(text, today, direction) for finder in _RANGE_FINDERS) if e]
    best = min(extras, key=lambda e: (e.start, -(e.end - e.start))) if extras else None
    if best is None or (base is not None and base.start < best.start):
        best = base
    day = find_day(text, today, direction=direction)
    if day is not None and (
        best is None
        or (
            day.start <= best.start
            and day.end >= best.end
            and (day.end - day.start) > len(best.text)
        )
    ):
        best = RangeMatch(day.value, day.value, day.start, day.end, day.text)
    if best is None:
        return _month_alone(text, today, direction)
    return _clip(best, today) if direction == "future" and best is not base else best


# --- time of day ------------------------------------------------------------------------------

# DOMAIN: morning before 12:00, afternoon 12:00-17:00, evening from 17:00.
_CLOCK = re.compile(
    r"\b(?P<pre>la|pe la|at|around|spre|catre|dupa|after|inainte de|before|by|pana la|until|"
    r"till|from|de la|incepand cu|intre|between|in jur de)"
    r"\s+(?:ora\s+|orele\s+)?(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|h)?\b"
    rf"(?!\s*(?:[./-]\d|%|zile\b|zi\b|days?\b|min\w*|ore\b|hours?\b|months?\b|luni\b|ani\b|"
    rf"years?\b|lei\b|ron\b|eur\w*|persoane|people|(?:{_MONTH_RE})\b))"
)
_MORNING = r"(?:dimineat\w*|diminetii|dimineti\w*|morning\w*)"
_AFTERNOON = r"(?:dupa[\s-]*amiaz\w*|dupa[\s-]*amiez\w*|dupa[\s-]*masa|afternoon\w*)"
_EVENING = r"(?:seara|serii|seri|serile|evening\w*|night)"
# Phrases that decide over the words inside them ("late afternoon" is evening).
_COMPOUND: tuple[tuple[TimeSlot, str], ...] = (
    (
        "evening",
        r"\b(?:late[\s-]+afternoon\w*|dupa[\s-]*(?:amiaza|amiaz\w*|masa|pranz)\s+"
        r"(?:tarziu|tarzie)|(?:tarziu|spre finalul zilei)\s+dupa[\s-]*amiaz\w*|"
        r"early[\s-]+evening\w*|spre seara|catre seara|pe inserat|la inserat|"
        r"inserat\w*)\b",
    ),
    (
        "afternoon",
        r"\b(?:early[\s-]+afternoon\w*|dupa[\s-]*(?:amiaza|amiaz\w*|masa|pranz)\s+"
        r"devreme|(?:devreme|la inceputul)\s+dupa[\s-]*amiez\w*|"
        r"(?:in the|la)\s+(?:pm|p\.m\.))\b",
    ),
    (
        "morning",
        r"\b(?:late[\s-]+morning\w*|mid[\s-]?morning\w*|early[\s-]+morning\w*|"
        r"dimineata\s+(?:devreme|tarziu)|(?:in the|la)\s+(?:am|a\.m\.))\b",
    ),
)
_NAMED: tuple[tuple[TimeSlot, str], ...] = (
    (
        "afternoon",
        r"\b(?:la pranz|pranz|noon|midday|lunchtime|lunch time|la amiaza|"
        r"afternoons|dupa[\s-]*amiezi\w*|dupa[\s-]*amiezele)\b",
    ),
    (
        "morning",
        r"\b(?:la prima ora|first thing|early(?!\s+(?:afternoon|evening))|mornings|"
        r"dimineti\w*|de dimineata|a\.m\.|in the am)\b",
    ),
    (
        "evening",
        r"\b(?:late(?!\s+(?:morning|afternoon))|tarziu|end of the day|end of day|"
        r"la sfarsitul zilei|la finalul zilei|la final de zi|spre final de zi|evenings|"
        r"serile|after hours|dupa (?:serviciu|munca|job)|after (?:office|business) hours|"
        r"after work|at night|noaptea)\b",
    ),
    (
        "any",
        r"\b(?:no preference|indiferent (?:de )?(?:ora|cand)|nu conteaza (?:ora|cand)|"
        r"whenever|any time of day|orice moment)\b",
    ),
)
# A part of the day right after a clock time says which half of the clock it is
# ("la 7 dimineața", "at 8 in the evening").
_PART_AFTER_CLOCK = re.compile(
    r"\s*(?:o'?clock\s+)?(?:in the\s+|at\s+|de\s+|din\s+|of the\s+|,\s*)?"
    rf"(?:{_MORNING}|{_AFTERNOON}|{_EVENING}|diseara|tonight)\b"
)
_BEFORE_CLOCK = ("inainte de", "before", "by", "pana la", "until", "till")


def _clock_slot(hour: int, minutes: int, suffix: str | None, before: bool) -> TimeSlot | None:
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix != "am" and 1 <= hour <= 7:
        hour += 12  # "la 3" at a clinic is three in the afternoon
    at = hour * 60 + minutes - (1 if before else 0)  # "before 17" ends in the afternoon
    if 6 * 60 <= at < 12 * 60:
        return "morning"
    if 12 * 60 <= at < 17 * 60:
        return "afternoon"
    if 17 * 60 <= at <= 23 * 60:
        return "evening"
    return None


def _overlaps(a: SlotMatch, b: SlotMatch) -> bool:
    return a.start < b.end and b.start < a.end


@lru_cache(maxsize=2048)
def find_slot(text: str) -> SlotMatch | None:
    """The preferred time of day: ``domain.dates.find_time_slot``, bare clock times, noon ...

    A phrase wins over the words inside it ("late afternoon" is evening), a part of
    the day said right after a clock time decides it ("la 7 dimineața" is morning), a
    time after "before" ends just before it ("înainte de ora 17" is afternoon); else
    the first mention wins.
    """
    compound = [
        SlotMatch(slot_name, m.start(), m.end(), m.group(0))
        for slot_name, pattern in _COMPOUND
        for m in _rx(pattern).finditer(text)
    ]
    hits = []
    base = find_time_slot(text)
    if base is not None:
        hits.append(base)
    for m in _CLOCK.finditer(text):
        if _PART_AFTER_CLOCK.match(text, m.end()):
            continue  # the part of the day that follows decides
        before = m.group("pre") in _BEFORE_CLOCK
        slot = _clock_slot(int(m.group(2)), int(m.group(3) or 0), m.group(4), before)
        if slot is not None:
            hits.append(SlotMatch(slot, m.start(), m.end(), m.group(0)))
    if (
        base is not None
        and base.text.rstrip()[-1:].isdigit()
        and _PART_AFTER_CLOCK.match(text, base.end)
    ):
        hits.remove(base)  # "ora 7 seara": the word after the time decides
        after = find_time_slot(text[base.end :])
        if after is not None:
            base = SlotMatch(after.slot, base.end + after.start, base.end + after.end, after.text)
            hits.append(base)
    for slot_name, pattern in _NAMED:
        for m in _rx(pattern).finditer(text):
            hits.append(SlotMatch(slot_name, m.start(), m.end(), m.group(0)))
    if base is not None and any(h is not base and _overlaps(h, base) for h in hits):
        hits.remove(base)  # "at 6" at a clinic is six in the evening, as read above
    hits = [h for h in hits if not any(_overlaps(h, c) for c in compound)] + compound
    if not hits:
        return None
    # "any time after 5": a part of the day said wins over "any time".
    return min(hits, key=lambda h: (h.slot == "any", h.start, h is not base))
