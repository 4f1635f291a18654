"""Finding values that must not be read as keywords, and cutting a query into requests.

Quoted messages, identifiers, emails and phone numbers are located first and
*masked* (replaced by ``#`` of the same length) in the folded text, so words inside
them never trigger a function and separators inside them never split a request.
Because ``domain.text.fold`` keeps offsets, every span also slices the original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from domain.phones import find_phone_spans
from domain.text import fold, normalize

MASK = "#"


@dataclass(frozen=True)
class Span:
    """A value found in the query: its kind, offsets and text as written."""

    kind: str
    start: int
    end: int
    value: str


@dataclass
class Parsed:
    """A query prepared for detection."""

    original: str
    folded: str
    masked: str
    spans: list[Span] = field(default_factory=list)

    def of_kind(self, kind: str, start: int = 0, end: int | None = None) -> list[Span]:
        """Spans of ``kind`` that start inside ``[start, end)``, in order."""
        stop = len(self.original) if end is None else end
        return [s for s in self.spans if s.kind == kind and start <= s.start < stop]


_QUOTES = re.compile(
    r"„([^”“\"]+)[”“\"]"
    r"|“([^”]+)”"
    r"|«([^»]+)»"
    r'|"([^"]+)"'
    r"|(?:(?<=^)|(?<=[\s:(]))'([^']+)'(?=$|[\s.,;:!?)])"
)
# Ids contain a digit, so Romanian articles ("workflow-ul", "task-ului") are not ids.
_ID_TAIL = r"-[a-z0-9-]*\d[a-z0-9-]*"
_IDS: tuple[tuple[str, str], ...] = (
    ("task", rf"\b(?:wf|workflow|task|run){_ID_TAIL}"),
    (
        "task",
        r"\b(?:lead-scoring|patient-journey|nurture-sequence|booking-agent)-[a-z0-9-]*\d[a-z0-9-]*",
    ),
    ("appointment", rf"\b(?:apt|appt){_ID_TAIL}"),
    ("patient", rf"\bpat{_ID_TAIL}"),
    ("lead", rf"\blead{_ID_TAIL}"),
    ("doctor", r"\b(?:doc|dr)-(?!ul\b|ului\b)[a-z0-9][a-z0-9-]*"),
)
# The look-behind stops the scan from restarting inside a long word (quadratic time).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def parse(query: str) -> Parsed:
    """Fold ``query``, find its quoted texts, ids, emails and phones, and mask them."""
    original = normalize(query)
    parsed = Parsed(original, fold(original), fold(original))
    for m in _QUOTES.finditer(original):
        text = next(g for g in m.groups() if g is not None).strip()
        _add(parsed, Span("quote", m.start(), m.end(), text))
    for kind, pattern in _IDS:
        for m in re.finditer(pattern, parsed.masked):
            value = original[m.start() : m.end()].rstrip("-")
            _add(parsed, Span(kind, m.start(), m.start() + len(value), value))
    for m in _EMAIL.finditer(parsed.masked):
        value = original[m.start() : m.end()].rstrip(".")
        _add(parsed, Span("email", m.start(), m.start() + len(value), value))
    for number, start, end in find_phone_spans(parsed.masked.replace(MASK, " ")):
        _add(parsed, Span("phone", start, end, number))
    parsed.spans.sort(key=lambda s: s.start)
    return parsed


def _add(parsed: Parsed, span: Span) -> None:
    if MASK in parsed.masked[span.start : span.end]:
        return
    parsed.spans.append(span)
    parsed.masked = (
        parsed.masked[: span.start] + MASK * (span.end - span.start) + parsed.masked[span.end :]
    )


def add_free_text(parsed: Parsed, kind: str, start: int, end: int) -> Span | None:
    """Mark ``[start, end)`` as unquoted free text (a message or a note) and mask it."""
    value = parsed.original[start:end].strip().rstrip(".!?;,").strip()
    if not value:
        return None
    span = Span(kind, start, end, value)
    _add(parsed, span)
    parsed.spans.sort(key=lambda s: s.start)
    return span


# --- requests ---------------------------------------------------------------------------

_SEPARATOR = re.compile(
    r"\s*[;]\s*"
    r"|(?<=[^\d\s])[.!?]+\s+"
    r"|\s*,?\s+(?:si apoi|iar apoi|and then|dupa care|dupa aceea|after that|apoi|then|iar|"
    r"si|and|plus)\s+"
    r"|\s*,\s*"
)


def pieces(masked: str) -> list[tuple[int, int]]:
    """Cut masked text at separators (punctuation and "și", "apoi", "and", "then" ...).

    Returns ``(start, end)`` offsets of the non-empty pieces, in order. The
    detector merges a piece back into its neighbour when it asks for nothing.
    """
    bounds = []
    position = 0
    for m in _SEPARATOR.finditer(masked):
        if m.start() > position:
            bounds.append((position, m.start()))
        position = m.end()
    if position < len(masked):
        bounds.append((position, len(masked)))
    return [(s, e) for s, e in bounds if masked[s:e].strip()] or [(0, len(masked))]
