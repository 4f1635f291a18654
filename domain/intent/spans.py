"""Finding values that must not be read as keywords, and cutting a query into requests.

Quoted messages, identifiers, emails and phone numbers are located first and
*masked* (replaced by ``#`` of the same length) in the folded text, so words inside
them never trigger a function and separators inside them never split a request.
Because ``domain.text.fold`` keeps offsets, every span also slices the original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from domain.intent.lexicon import Canonical, canonical
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
    _canonical: Canonical | None = None

    def canonical(self) -> Canonical:
        """The masked text with abbreviations expanded and typos corrected (see ``lexicon``)."""
        if self._canonical is None:
            self._canonical = canonical(self.masked)
        return self._canonical

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
_ID_TAIL = r"[-_][a-z0-9_-]*\d[a-z0-9_-]*"
# Workflow ids as the gateway makes them: "<clinic>:<workflow>:<uuid>", "wf:booking:apt-7".
_COLON_ID = r"(?:[a-z0-9][a-z0-9_.-]*:)+[a-z0-9][a-z0-9_.-]*"
_UUID = r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
_IDS: tuple[tuple[str, str], ...] = (
    ("task", rf"(?<![\w:-])(?=[a-z0-9_.-]*[a-z])(?=[a-z0-9_.:-]*\d){_COLON_ID}"),
    ("task", rf"\b(?:wf|workflow|task|run|job){_ID_TAIL}"),
    (
        "task",
        r"\b(?:lead-scoring|patient-journey|nurture-sequence|booking-agent|booking|ai-plan|"
        r"message-delivery|nurture|journey|scoring)[-_][a-z0-9_-]*\d[a-z0-9_-]*",
    ),
    ("task", _UUID),
    ("appointment", rf"\b(?:apt|appt|programare){_ID_TAIL}"),
    ("patient", rf"\b(?:pat|patient|pacient){_ID_TAIL}"),
    ("lead", rf"\blead{_ID_TAIL}"),
    ("doctor", r"\b(?:doc|dr)-(?!ul\b|ului\b)[a-z0-9][a-z0-9-]*"),
)
# A Romanian mobile or landline number written without its leading 0 ("721234567").
_BARE_NUMBER = re.compile(r"(?<![\d+#])[237]\d{2}[ .-]?\d{3}[ .-]?\d{3}(?![\d#])")
# The look-behind stops the scan from restarting inside a long word (quadratic time).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


# A workflow id of any shape right after the words that name one ("status", "workflow-ul",
# "fluxul", "task", "sarcina", "job", "id"): "booking-apt-4f2c", "wf_12", "run 7781".
_TASK_WORD = (
    r"\b(?:status\w*|stare[a]?|starii|state|stadiu\w*|progres\w*|workflow\w*|flux\w*|task\w*|"
    r"sarcin\w*|job\w*|run|id|execution|executi\w*|procesul|process)(?:-(?:ul|ului|urile))?"
)
_TASK_AFTER_WORD = re.compile(
    _TASK_WORD + r"(?:\s+(?:of|for|on|al|a|lui|la|pentru|cu|with|id|id-ul|number|nr\.?|numarul|"
    r"the|this|workflow\w*|flux\w*|task\w*|job\w*|run|#)\b)*\s*[:=#]?\s*"
    r"(?<![\w.:-])(?P<id>(?!(?:apt|appt|programare|pat|patient|pacient|lead|doc|dr)[-_])"
    r"(?=[a-z0-9_.:-]*[a-z])(?=[a-z0-9_.:-]*\d)[a-z0-9][a-z0-9_.:-]*[a-z0-9]"
    r"|[1-9]\d{2,8}(?![\d.,:/-])(?!\s*(?:km|min\w*|ore|h|lei|ron|eur\w*|zile|days?|%|ani|"
    r"years?)\b))(?![\w@])"
)
# A quoted value that is one id ("'booking-apt-77'", "“wf-9”") is that id, not a message.
_ONE_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:-]*\d[a-z0-9_.:-]*|[a-z0-9_.:-]*\d[a-z0-9_.:-]*[a-z]")


def parse(query: str) -> Parsed:
    """Fold ``query``, find its quoted texts, ids, emails and phones, and mask them."""
    original = normalize(query)
    parsed = Parsed(original, fold(original), fold(original))
    for m in _QUOTES.finditer(original):
        text = next(g for g in m.groups() if g is not None).strip()
        _add(parsed, Span(_quoted_kind(parsed.folded, m.start(), text), m.start(), m.end(), text))
    for m in _TASK_AFTER_WORD.finditer(parsed.masked):
        start, end = m.span("id")
        value = original[start:end].rstrip("-_.:")
        _add(parsed, Span("task", start, start + len(value), value))
    for kind, pattern in _IDS:
        for m in re.finditer(pattern, parsed.masked):
            value = original[m.start() : m.end()].rstrip("-_.:")
            _add(parsed, Span(kind, m.start(), m.start() + len(value), value))
    for m in _EMAIL.finditer(parsed.masked):
        value = original[m.start() : m.end()].rstrip(".")
        _add(parsed, Span("email", m.start(), m.start() + len(value), value))
    for number, start, end in find_phone_spans(parsed.masked.replace(MASK, " ")):
        _add(parsed, Span("phone", start, end, number))
    for m in _BARE_NUMBER.finditer(parsed.masked):
        found = find_phone_spans("0" + re.sub(r"[ .-]", "", m.group(0)))
        if found:
            _add(parsed, Span("phone", m.start(), m.end(), found[0][0]))
    parsed.spans.sort(key=lambda s: s.start)
    return parsed


def _quoted_kind(folded: str, start: int, text: str) -> str:
    """ "quote", or the kind of id a quoted single token is (a workflow id after "status")."""
    token = fold(text)
    if not _ONE_TOKEN.fullmatch(token):
        return "quote"
    for kind, pattern in _IDS:
        if re.fullmatch(pattern, token):
            return kind
    if re.search(_TASK_WORD + r"\W*(?:\w+\W+){0,3}$", folded[max(0, start - 40) : start]):
        return "task"
    return "quote"


def _add(parsed: Parsed, span: Span) -> None:
    if MASK in parsed.masked[span.start : span.end]:
        return
    parsed._canonical = None
    parsed.spans.append(span)
    parsed.masked = (
        parsed.masked[: span.start] + MASK * (span.end - span.start) + parsed.masked[span.end :]
    )


def add_free_text(parsed: Parsed, kind: str, start: int, end: int) -> Span | None:
    """Mark ``[start, end)`` as unquoted free text (a message or a note) and mask it.

    Values inside it (an id, a number, an email) are part of the text: they stop
    being values of their own.
    """
    lead = re.match(r"[\s:–—-]*", parsed.original[start:end])
    start += lead.end() if lead else 0
    value = parsed.original[start:end].strip().rstrip(".!?;,").strip()
    if not value:
        return None
    if any(s.start < end and start < s.end and not (start <= s.start and s.end <= end)
           for s in parsed.spans):  # fmt: skip
        return None
    parsed.spans = [s for s in parsed.spans if not (start <= s.start and s.end <= end)]
    span = Span(kind, start, end, value)
    parsed.masked = parsed.masked[:start] + MASK * (end - start) + parsed.masked[end:]
    parsed._canonical = None
    parsed.spans.append(span)
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
