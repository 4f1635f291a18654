"""Deterministic intent detection: a query in Romanian or English → gateway calls.

How a query is read:

1. ``spans.parse`` folds it (case and diacritics), finds quoted messages, ids
   (``apt-``, ``pat-``, ``lead-``, ``doc-``, workflow ids), emails and phones, and
   masks them. Unquoted message or note text after "trimite ... :" / "că" / "that"
   is masked too; it runs to the end of the query.
2. The masked text is cut at "și", "apoi", "and", "then", commas and sentence
   ends. A piece starts a new request only if its own words carry a strong cue,
   both it and the request before it reach the threshold, and it is not an
   incomplete repeat of the same function; otherwise it is glued to the previous one.
3. Each request scores every function: keyword score = noisy-OR of matched cue
   weights (``cues.CUES``, plus values found, plus one-typo matches) times the
   matched penalties; confidence = keyword score × (0.8 + 0.2 × share of the
   required arguments found). The best function at or above the threshold wins;
   equal confidences go to the earlier function in ``models.PRIORITY``.
4. Arguments come from the request, then the rest of the query, then the context.

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
    CUES,
    ENTITY_PENALTIES,
    ENTITY_WEIGHTS,
    PENALTIES,
    TRIGGER_WEIGHT,
    TYPO_WEIGHT,
    TYPO_WORDS,
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
    find_consent_types,
    find_group_by,
    find_template,
    find_workflow_name,
)
from domain.services import find_services
from domain.text import fold, within_one_edit

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
    segments = _requests(parsed, today, context, threshold)
    calls = []
    for segment in segments:
        best = _rank(segment, segments, today, context)[0]
        if best.confidence >= threshold:
            calls.append(best.as_call())
    whole = Segment(parsed, 0, len(parsed.original))
    candidates = [s.as_candidate() for s in _rank(whole, [whole], today, context)]
    candidates = [c for c in candidates if c.confidence > 0][:_MAX_CANDIDATES]
    confidence = min((c.confidence for c in calls), default=None)
    if confidence is None:
        confidence = candidates[0].confidence if candidates else 0.0
    return IntentResult(
        calls=_without_repeats(calls),
        confidence=confidence,
        language=detect_language(parsed.original, context),
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
            evidence=self.evidence + self.request.evidence,
        )

    def as_candidate(self) -> Candidate:
        return Candidate(function=self.function, confidence=self.confidence, evidence=self.evidence)


def _rank(
    segment: Segment, segments: list[Segment], today: date, context: IntentContext
) -> list[_Scored]:
    others = [s for s in segments if s is not segment]
    keyword = _keyword_scores(segment)
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
    segment: Segment, *, with_values: bool = True
) -> dict[FunctionName, tuple[float, list[str]]]:
    text = segment.text
    entities = _entity_kinds(segment) if with_values else {}
    exact_spans: list[tuple[int, int]] = []
    matched: dict[FunctionName, list[tuple[str, str, float]]] = {f: [] for f in PRIORITY}
    for function, cues in _STRONGEST_FIRST.items():
        taken: list[tuple[int, int]] = []
        for cue in cues:
            m = cue.pattern.search(text)
            # Each word counts once per function: a weaker cue over the same words adds nothing.
            if m and not any(s < m.end() and m.start() < e for s, e in taken):
                matched[function].append((cue.label, m.group(0), cue.weight))
                taken.append(m.span())
        exact_spans.extend(taken)
    for kind, weights in ENTITY_WEIGHTS.items():
        if kind in entities:
            for function, weight in weights.items():
                matched[function].append((f"{kind} value", entities[kind], weight))
    _add_typo_cues(text, exact_spans, matched)
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
    for cue in PENALTIES.get(function, ()):
        m = cue.pattern.search(text)
        if m and score:
            score *= 1 - cue.weight
            evidence.append(f"{cue.label}: '{m.group(0).strip()}' (x{1 - cue.weight:.2f})")
    for kind, penalties in ENTITY_PENALTIES.items():
        if kind in entities and function in penalties and score:
            score *= 1 - penalties[function]
            evidence.append(f"{kind} value present (x{1 - penalties[function]:.2f})")
    return round(score, 4), evidence


_TOKEN = re.compile(r"[a-z]{5,}")


def _add_typo_cues(
    text: str,
    exact_spans: list[tuple[int, int]],
    matched: dict[FunctionName, list[tuple[str, str, float]]],
) -> None:
    for token in _TOKEN.finditer(text):
        if any(s < token.end() and token.start() < e for s, e in exact_spans):
            continue
        for function, words in TYPO_WORDS.items():
            if matched[function] and any(w >= TRIGGER_WEIGHT for _, _, w in matched[function]):
                continue
            typo_of = next((w for w in words if within_one_edit(token.group(0), w)), None)
            if typo_of:
                matched[function].append((f"typo of '{typo_of}'", token.group(0), TYPO_WEIGHT))


def _entity_kinds(segment: Segment) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind in ("appointment", "task", "quote", "message"):
        spans = segment.spans(kind)
        if spans:
            found[kind] = spans[0].value
    text = segment.text
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
    services = find_services(text)
    if services:
        found["service"] = services[0].text
    return found


# --- requests ---------------------------------------------------------------------------


def _requests(
    parsed: Parsed, today: date, context: IntentContext, threshold: float
) -> list[Segment]:
    all_pieces = [Segment(parsed, start, end) for start, end in pieces(parsed.masked)]
    merged: list[Segment] = []
    for piece in all_pieces:
        if not merged or _opens_request(piece, merged[-1], all_pieces, today, context, threshold):
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
) -> bool:
    """Whether ``piece`` starts a request of its own rather than adding to ``previous``.

    It does when its own words ask for something, both it and the request before
    it reach the threshold (values may come from anywhere in the query), and it is
    not an incomplete repeat of the same function ("... în martie? Pe clasificări").
    """
    if not _has_trigger(piece):
        return False
    before = _rank(previous, all_pieces, today, context)[0]
    here = _rank(piece, all_pieces, today, context)[0]
    if before.confidence < threshold or here.confidence < threshold:
        return False
    incomplete = missing_arguments(here.function, here.request.arguments)
    return not (here.function == before.function and incomplete)


def _has_trigger(segment: Segment) -> bool:
    """True when the words of ``segment`` (not the values in it) ask for something."""
    scores = _keyword_scores(segment, with_values=False)
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

_SEND_CUE = re.compile(r"\b(?:trimit\w*|send\w*|scri(?:e|eti|ei)\b|text\b|message\b|whats ?app\b)")
_NOTE_CUE = re.compile(r"\b(?:nota\b|notita\b|noteaza\b|notati\b|note\b|observati\w*)")
_INTRO = re.compile(
    r"(?::|\b(?:ca|that|saying|spunand ca|cu textul|with the text|with the message|to say|"
    r"to tell (?:him|her|them))\b)\s*"
)
_CLAUSE_END = re.compile(r",|;|\s(?:si|and|apoi|then|iar)\s|[.!?]\s")


def _mask_free_text(parsed: Parsed) -> None:
    if parsed.of_kind("quote"):
        return
    for kind, cue in (("message", _SEND_CUE), ("note", _NOTE_CUE)):
        for m in cue.finditer(parsed.masked):
            rest = parsed.masked[m.end() :]
            clause_end = _CLAUSE_END.search(rest)
            clause = rest[: clause_end.start()] if clause_end else rest
            intro = _INTRO.search(clause)
            if intro:
                start = m.end() + intro.end()
                if add_free_text(parsed, kind, start, len(parsed.original)):
                    break


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
    "his", "their", "by", "can", "you", "we", "any",
))  # fmt: skip
_RO_LETTERS = re.compile(r"[ăâîșşțţĂÂÎȘŞȚŢ]")


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
