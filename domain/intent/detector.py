"""Deterministic intent detection: a query in Romanian or English → gateway calls.

How a query is read:

1. ``spans.parse`` folds it (case and diacritics), finds quoted messages, ids
   (``apt-``, ``pat-``, ``lead-``, ``doc-``, workflow ids with dashes or colons,
   UUIDs, any id after "status" / "workflow" / "task"; a quoted single id is that
   id), emails and phones (also without the leading 0), and masks them.
   Unquoted message or note text after "trimite ... :" / "că" / "that" / "să" /
   "tell her to" is masked too (not when the message is only reported: "ne-a scris
   pe WhatsApp că ..."); it runs to the end of the query or to the next request
   ("... și programează-l mâine"), and the values inside it are part of it.
2. Cues read the *canonical* text (``lexicon``): SMS abbreviations expanded ("pt",
   "progr", "dna", "tmrw") and words one typo away from the domain vocabulary
   corrected ("progrmeaza"), each rewrite named in the evidence.
3. The masked text is cut at "și", "apoi", "and", "then", commas and sentence
   ends. A piece starts a new request only if its own words carry a strong cue,
   both it and the request before it reach the threshold, and it does not merely
   continue the request before (the same function, with one of the two incomplete
   or the piece naming no values of its own); otherwise it is glued to it.
4. Each request scores every function: keyword score = noisy-OR of matched cue
   weights (``cues.CUES``, plus values found, ``ENTITY_WEIGHTS``, and values found
   together, ``COMBOS``: a patient, a treatment and a day suggest a booking) times
   the matched penalties (negation, a reported past action, a condition, a question
   where a statement is expected, a definition asked for); confidence = keyword
   score × (0.8 + 0.2 × share of the required arguments found). The best function
   at or above the threshold wins; equal confidences go to the earlier function in
   ``models.PRIORITY``.
5. Arguments come from the request, then the rest of the query, then the context.

Calls never reference each other's results (no ``$ref``): a later call that needs
a value the earlier one will produce lists it in ``missing`` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from domain.dates import clinic_today
from domain.intent.arguments import Request, Segment, build_arguments, missing_arguments
from domain.intent.cues import (
    COMBOS,
    CUES,
    ENTITY_PENALTIES,
    ENTITY_WEIGHTS,
    GENERAL_PENALTIES,
    PENALTIES,
    REQUEST_VERB,
    TRIGGER_WEIGHT,
)
from domain.intent.models import (
    PRIORITY,
    Candidate,
    DetectedCall,
    FunctionName,
    IntentContext,
    IntentResult,
    Language,
)
from domain.intent.spans import Parsed, add_free_text, parse, pieces
from domain.intent.vocab import (
    find_consent_status,
    find_consent_types,
    find_group_by,
    find_service,
    find_template,
    find_workflow_name,
)
from domain.intent.when import find_day
from domain.text import fold

_MAX_CANDIDATES = 3
_STRONGEST_FIRST = {f: sorted(cues, key=lambda c: -c.weight) for f, cues in CUES.items()}


def detect_intents(
    query: str,
    *,
    now: datetime,
    context: IntentContext | None = None,
    threshold: float = 0.5,
) -> IntentResult:
    """Understand ``query`` as an ordered list of gateway calls.

    ``now`` (timezone-aware) anchors relative dates in Europe/Bucharest;
    ``context`` supplies the patient in focus; a call needs a confidence of at
    least ``threshold``. The result is a pure function of the arguments.
    """
    context = context or IntentContext()
    today = clinic_today(now)
    parsed = parse(query)
    _mask_free_text(parsed)
    memo: _Memo = {}
    segments = _requests(parsed, today, context, threshold, memo)
    calls = []
    for segment in segments:
        best = _rank(segment, segments, today, context, memo)[0]
        if best.confidence >= threshold:
            calls.append(best.as_call())
    whole = Segment(parsed, 0, len(parsed.original))
    candidates = [s.as_candidate() for s in _rank(whole, [whole], today, context, memo)]
    candidates = [c for c in candidates if c.confidence > 0][:_MAX_CANDIDATES]
    confidence = min((c.confidence for c in calls), default=None)
    if confidence is None:
        confidence = candidates[0].confidence if candidates else 0.0
    return IntentResult(
        calls=_without_repeats(calls),
        confidence=confidence,
        language=detect_language(_without_ids(parsed), context),
        candidates=candidates,
    )


# --- scoring ----------------------------------------------------------------------------


@dataclass
class _Scored:
    function: FunctionName
    confidence: float
    evidence: list[str]
    request: Request

    def as_call(self) -> DetectedCall:
        return DetectedCall(
            function=self.function,
            arguments=self.request.arguments,
            missing=missing_arguments(self.function, self.request.arguments),
            confidence=self.confidence,
            evidence=self.request.segment.corrections + self.evidence + self.request.evidence,
        )

    def as_candidate(self) -> Candidate:
        return Candidate(function=self.function, confidence=self.confidence, evidence=self.evidence)


_Memo = dict[tuple[int, int, tuple[tuple[int, int], ...]], list["_Scored"]]


def _rank(
    segment: Segment,
    segments: list[Segment],
    today: date,
    context: IntentContext,
    memo: _Memo,
) -> list[_Scored]:
    """Every function scored for ``segment``, best first (remembered per query in ``memo``)."""
    others = [s for s in segments if s is not segment]
    key = (segment.start, segment.end, tuple((s.start, s.end) for s in others))
    if key not in memo:
        memo[key] = _score_all(segment, others, today, context)
    return memo[key]


def _score_all(
    segment: Segment, others: list[Segment], today: date, context: IntentContext
) -> list[_Scored]:
    keyword = _keyword_scores(segment, today)
    scored = []
    for function in PRIORITY:
        score, evidence = keyword[function]
        request = Request(segment, others, today, context)
        build_arguments(function, request)
        required = missing_arguments(function, {})
        found = len(required) - len(missing_arguments(function, request.arguments))
        share = found / len(required)
        confidence = round(score * (0.8 + 0.2 * share), 3)
        scored.append(_Scored(function, confidence, evidence, request))
    # sorted() is stable, so equal confidences keep PRIORITY order.
    return sorted(scored, key=lambda s: -s.confidence)


def _keyword_scores(
    segment: Segment, today: date, *, with_values: bool = True
) -> dict[FunctionName, tuple[float, list[str]]]:
    text = segment.canon
    entities = _entity_kinds(segment, today) if with_values else {}
    matched: dict[FunctionName, list[tuple[str, str, float]]] = {f: [] for f in PRIORITY}
    for function, cues in _STRONGEST_FIRST.items():
        taken: list[tuple[int, int]] = []
        for cue in cues:
            m = cue.pattern.search(text)
            if m is None:
                continue
            # A cue may name the words it claims (group "w"); by default all it matched.
            start, end = m.span("w") if "w" in cue.pattern.groupindex else m.span()
            # Each word counts once per function: a weaker cue over the same words adds nothing.
            if not any(s < end and start < e for s, e in taken):
                matched[function].append((cue.label, m.group(0), cue.weight))
                taken.append((start, end))
    for kind, weights in ENTITY_WEIGHTS.items():
        if kind in entities:
            for function, weight in weights.items():
                matched[function].append((f"{kind} value", entities[kind], weight))
    for function, combos in COMBOS.items():
        for combo in combos:
            if all(k in entities for k in combo.kinds):
                words = combo.pattern.search(text) if combo.pattern else None
                if combo.pattern is None or words:
                    shown = (
                        words.group(0) if words else " + ".join(entities[k] for k in combo.kinds)
                    )
                    matched[function].append((combo.label, shown, combo.weight))
    return {f: _combine(f, text, entities, matched[f]) for f in PRIORITY}


def _combine(
    function: FunctionName,
    text: str,
    entities: dict[str, str],
    matched: list[tuple[str, str, float]],
) -> tuple[float, list[str]]:
    keep = 1.0
    evidence = []
    for label, words, weight in matched:
        keep *= 1 - weight
        evidence.append(f"{label}: '{words.strip()}' (+{weight})")
    score = 1 - keep if matched else 0.0
    for cue in (*PENALTIES.get(function, ()), *GENERAL_PENALTIES):
        m = cue.pattern.search(text)
        if m and score:
            score *= 1 - cue.weight
            evidence.append(f"{cue.label}: '{m.group(0).strip()}' (x{1 - cue.weight:.2f})")
    for kind, penalties in ENTITY_PENALTIES.items():
        if kind in entities and function in penalties and score:
            score *= 1 - penalties[function]
            evidence.append(f"{kind} value present (x{1 - penalties[function]:.2f})")
    return round(score, 4), evidence


def _entity_kinds(segment: Segment, today: date) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind in ("appointment", "task", "quote", "message", "note", "patient", "phone"):
        spans = segment.spans(kind)
        if spans:
            found[kind] = spans[0].value
    text = segment.canon
    day = find_day(text, today, direction="future")
    if day is not None and day.value >= today:
        found["future_day"] = day.text
    found["question" if segment.is_question else "statement"] = "?"
    status = find_consent_status(text)
    if status:
        found["consent_status"] = status.text
    finders = {
        "workflow_name": find_workflow_name,
        "template": find_template,
        "group_by": find_group_by,
    }
    for kind, finder in finders.items():
        hit = finder(text)
        if hit:
            found[kind] = hit.text
    consent = find_consent_types(text)
    if consent:
        found["consent_type"] = consent[0].text
    service = find_service(text)
    if service:
        found["service"] = service.text
    return found


# --- requests ---------------------------------------------------------------------------


def _requests(
    parsed: Parsed, today: date, context: IntentContext, threshold: float, memo: _Memo
) -> list[Segment]:
    all_pieces = [Segment(parsed, start, end) for start, end in pieces(parsed.masked)]
    merged: list[Segment] = []
    for piece in all_pieces:
        if not merged or _opens_request(
            piece, merged[-1], all_pieces, today, context, threshold, memo
        ):
            merged.append(piece)
        else:
            merged[-1] = Segment(parsed, merged[-1].start, piece.end)
    return merged


def _opens_request(
    piece: Segment,
    previous: Segment,
    all_pieces: list[Segment],
    today: date,
    context: IntentContext,
    threshold: float,
    memo: _Memo,
) -> bool:
    """Whether ``piece`` starts a request of its own rather than adding to ``previous``.

    It does when its own words ask for something, both it and the request before
    it reach the threshold (values may come from anywhere in the query), and it
    does not merely continue the request before: the same function again, with one
    of the two incomplete or the piece naming no values of its own ("... în martie?
    Pe clasificări", "apt-3 nu mai are loc, anulează-l fără să-l anunți").
    """
    if not _has_trigger(piece, today):
        return False
    before = _rank(previous, all_pieces, today, context, memo)[0]
    here = _rank(piece, all_pieces, today, context, memo)[0]
    if before.confidence < threshold or here.confidence < threshold:
        return False
    if here.function != before.function:
        return True
    # The same function again opens a request only when both are complete and the piece
    # names its own values ("... pe canale luna asta și ... pe zile săptămâna trecută").
    alone = Request(piece, [], today, IntentContext())
    build_arguments(here.function, alone)
    return not (
        missing_arguments(here.function, here.request.arguments)
        or missing_arguments(before.function, before.request.arguments)
        or missing_arguments(here.function, alone.arguments)
    )


def _has_trigger(segment: Segment, today: date) -> bool:
    """True when the words of ``segment`` (not the values in it) ask for something."""
    scores = _keyword_scores(segment, today, with_values=False)
    return any(score >= TRIGGER_WEIGHT for score, _ in scores.values())


def _without_repeats(calls: list[DetectedCall]) -> list[DetectedCall]:
    unique: list[DetectedCall] = []
    for call in calls:
        if unique and (unique[-1].function, unique[-1].arguments) == (
            call.function,
            call.arguments,
        ):
            continue
        unique.append(call)
    return unique


# --- unquoted messages and notes ------------------------------------------------------

_SEND_CUE = re.compile(
    r"\b(?:trimit\w*|send\w*|ask\b|scri(?:e|eti|ei|u)\b|text\b|message\b|whats ?app\b|zi-i\b|"
    r"spune-i\b|spuneti-i\b|anunta-(?:l|o|i)\b|anuntati-(?:l|o|i)\b|tell\b|know\b|ping\b|"
    r"notify\b|inform\w*|reply\b|remind\w*|aminteste-i\b|reaminteste-i\b)"
)
# "ne-a scris pe WhatsApp că ..." reports a message; it is not one to send.
_REPORTED = re.compile(
    r"\b(?:a|au|am|ai|ne-a|mi-a|i-a|ne-au|v-a|l-a|le-a|has|have|had|already|deja|just|who|care)\s+"
    r"(?:mai\s+|deja\s+)?(?:scris|trimis|sent|wrote|written|texted|messaged|raspuns|replied|"
    r"contactat|contacted|sunat|called|spus|said|told|zis)\b[^,;.!?]{0,20}$"
)
_INTO_FILE = re.compile(
    r"(?:-i)?\s+(?:(?:in|la|into|on|to)\s+(?:the\s+|her\s+|his\s+|#+(?:'s)?\s+)?)"
    r"(?:fis\w*|dosar\w*|file|record|chart|notes|notite\w*|observati\w*|profil\w*)"
)
_NOTE_CUE = re.compile(
    r"\b(?:nota\b|notita\b|noteaza\b|notati\b|note\b|notes\b|notele\b|notitele\b|observati\w*|"
    r"(?:scrie|scrieti|trece|treceti|write|put)(?=\s+(?:in|la|into|on|to)\s+(?:the\s+|her\s+|"
    r"his\s+|#+(?:'s)?\s+)?(?:fis\w*|dosar\w*|file|record|chart|notes|observati\w*)))"
)
_INTRO = re.compile(
    r"(?::|\b(?:(?:saying|to say|telling (?:him|her|them)|to tell (?:him|her|them)|"
    r"spunand|zicand)(?:\s+(?:that|ca))?|ca(?!\s+sa\b)|that|cu textul|with the text|"
    r"with the message)\b)\s*|(?<!\bca )\b(?=sa \w)"
)
# "WhatsApp 0721... - we moved your appointment": the text after the number and a dash.
_DASH_INTRO = re.compile(r"^\s*(?:to\s+|la\s+|lui\s+|catre\s+)?#+\s*[-–—]\s*")
# "tell / ask her to <verb> ...": what follows "to" is the message ("remind her to ..." is the
# reminder template).
_ASKS_TO = ("tell", "ask")
_TO_VERB = re.compile(
    r"\bto\s+(?=(?!(?:the|a|an|his|her|their|him|them|us|me|whats ?app|sms|this|that)\b)[a-z]+\b)"
)
_CLAUSE_END = re.compile(r",|;|\s(?:si|and|apoi|then|iar)\s|[.!?]\s")


def _mask_free_text(parsed: Parsed) -> None:
    if parsed.of_kind("quote"):
        return
    for kind, cue in (("message", _SEND_CUE), ("note", _NOTE_CUE)):
        # Cues are read in the canonical text, so a typo ("trimte: ...") still finds them.
        canonical = parsed.canonical()
        for m in cue.finditer(canonical.text):
            before = canonical.text[max(0, m.start() - 60) : m.end()]
            if kind == "message" and _REPORTED.search(before):
                continue
            if kind == "message" and _INTO_FILE.match(canonical.text, m.end()):
                continue  # "scrie în fișa lui ...": a note, read below
            cue_end = canonical.source_offset(m.end())
            rest = parsed.masked[cue_end:]
            clause_end = _CLAUSE_END.search(rest)
            clause = rest[: clause_end.start()] if clause_end else rest
            intro = _DASH_INTRO.match(clause) or _INTRO.search(clause)
            if intro is None and kind == "message" and m.group(0) in _ASKS_TO:
                intro = _TO_VERB.search(clause)  # "tell him on WhatsApp to bring the X-ray"
            if intro:
                start = cue_end + intro.end()
                if kind == "note":
                    start = _after_subject(parsed, start)
                if add_free_text(parsed, kind, start, _free_text_end(parsed, start)):
                    break


# A free text ends where the query goes on with another request: "notează că ... și
# programează-l mâine", "add a note that ... and book him for Friday".
_NEXT_REQUEST = re.compile(
    r"(?:(?:\s*[,;]\s*|[.!?]\s+)(?:(?:si|and|apoi|then|iar|also|plus|dupa care|dupa aceea|"
    r"after that)\s+)*|\s+(?:(?:si|and|apoi|then|iar|also|plus|dupa care|dupa aceea|"
    r"after that)\s+)+)(?:(?:te rog|va rog|please|pls|also|tot|imediat|apoi|then)\s+)*"
    rf"(?={REQUEST_VERB})"
)
# "notează că pat-7 ...": the patient the note is about is not part of it.
_NOTE_SUBJECT = re.compile(
    r"\s*(?:(?:pacientul|pacienta|pacientului|pacientei|patient|the patient|lui|pe|la)\s+)?#+"
    r"(?:'s\b)?[\s,:-]*"
)


def _after_subject(parsed: Parsed, start: int) -> int:
    m = _NOTE_SUBJECT.match(parsed.masked, start)
    if m and parsed.of_kind("patient", start, m.end()):
        return m.end()
    return start


def _free_text_end(parsed: Parsed, start: int) -> int:
    m = _NEXT_REQUEST.search(parsed.masked, start)
    return m.start() if m else len(parsed.original)


# --- language -------------------------------------------------------------------------

# Frequent words of each language (folded); content words of the domain help short queries.
_RO_WORDS = frozenset((
    "si", "sau", "pe", "la", "pentru", "pt", "de", "cu", "din", "ce", "care", "cate", "cati",
    "este", "e", "sa", "lui", "ei", "lor", "mi", "ii", "il", "o", "un", "mai", "nu", "da",
    "azi", "maine", "poimaine", "luna", "asta", "acum", "programeaza", "programare",
    "anuleaza", "trimite", "pacientul", "pacienta", "pacient", "leadul", "leaduri", "acord",
    "acordul", "avem", "am", "au", "vreau", "te", "rog", "dupa", "saptamana", "viitoare",
    "trecuta", "anul", "arata", "cauta", "gaseste", "verifica", "porneste", "statusul",
))  # fmt: skip
_EN_WORDS = frozenset((
    "the", "and", "or", "on", "at", "for", "to", "of", "with", "from", "what", "which", "who",
    "how", "is", "are", "was", "do", "does", "did", "this", "that", "please", "patient",
    "lead", "leads", "book", "schedule", "cancel", "send", "check", "show", "find", "start",
    "status", "tomorrow", "today", "next", "last", "week", "month", "year", "my", "her",
    "his", "their", "by", "can", "you", "we", "any", "update", "new", "done", "add", "note",
    "change", "run",
))  # fmt: skip
_RO_LETTERS = re.compile(r"[ăâîșşțţĂÂÎȘŞȚŢ]")


def _without_ids(parsed: Parsed) -> str:
    """The query without its ids, numbers and emails: "b7e2c1d4-..." is no word of any language
    (quoted texts stay: they are usually in the language of the one asking)."""
    chars = list(parsed.original)
    for span in parsed.spans:
        if span.kind not in ("quote", "message", "note"):
            chars[span.start : span.end] = " " * (span.end - span.start)
    return "".join(chars)


def detect_language(query: str, context: IntentContext | None = None) -> Language:
    """Return "ro" or "en" by counting common words of each (Romanian letters add two).

    A tie goes to ``context.language`` when it is ro or en, else to Romanian,
    the clinics' default.
    """
    words = re.findall(r"[a-z]+", fold(query))
    ro = sum(w in _RO_WORDS for w in words) + (2 if _RO_LETTERS.search(query) else 0)
    en = sum(w in _EN_WORDS for w in words)
    if ro != en:
        return "ro" if ro > en else "en"
    if context is not None and context.language in ("ro", "en"):
        return "en" if context.language == "en" else "ro"
    return "ro"
