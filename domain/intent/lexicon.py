"""Reading words as people type them: SMS abbreviations and one-letter typos.

Cues (``cues``) and value finders (``vocab``, ``when``) are written for correctly
spelled, folded words. ``canonical`` rewrites the words of a masked query so they
see that form: an abbreviation is expanded ("pt" → "pentru", "progr" → "programare",
"tmrw" → "tomorrow") and a word of five or more letters that is not a known word
but is one typo (an inserted, deleted, substituted or two swapped letters) away
from exactly one word of the domain vocabulary is replaced by that word
("progrmeaza" → "programeaza", "cancle" → "cancel"). Only non-words are corrected:
``KNOWN_WORDS`` lists real Romanian and English words one typo away from the
vocabulary ("cauza" is not a typo of "cauta", "program" is not one of "programa").

Every rewrite is reported, so the evidence shows how a word was read. Masked values
(``#``) and everything that is not a word stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from domain.intent.known_words import KNOWN_WORDS
from domain.text import within_one_edit

# SMS and chat shorthand, folded. Only whole words are expanded.
ABBREVIATIONS: dict[str, str] = {
    "pt": "pentru", "ptr": "pentru", "ptru": "pentru", "pnt": "pentru",
    "pls": "please", "plz": "please", "pliz": "please", "plss": "please",
    "dl": "domnul", "dna": "doamna", "dnei": "doamnei", "dlui": "domnului",
    "progr": "programare", "prog": "programare", "progrm": "programare",
    "programm": "programare",
    "tel": "telefon", "tlf": "telefon", "nr": "numar", "numarul": "numarul",
    "msg": "mesaj", "msj": "mesaj", "mesg": "mesaj", "sms-ul": "sms",
    "wa": "whatsapp", "wapp": "whatsapp", "whatsup": "whatsapp", "watsapp": "whatsapp",
    "whatsap": "whatsapp", "wats": "whatsapp", "watsap": "whatsapp",
    "sapt": "saptamana", "sapta": "saptamana",
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmw": "tomorrow", "tomoz": "tomorrow",
    "tommorow": "tomorrow", "tommorrow": "tomorrow", "tomorrrow": "tomorrow",
    "chek": "check", "chk": "check", "chck": "check", "cnacel": "cancel", "bok": "book",
    "sched": "schedule", "avail": "available", "lu": "lui",
    "appt": "appointment", "appts": "appointments", "apts": "appointments",
    "pac": "pacient",
    "u": "you", "ur": "your", "r": "are", "thx": "thanks", "ty": "thanks",
    "mersi": "multumesc", "ms": "multumesc", "mltm": "multumesc", "msi": "multumesc",
    "dvs": "dumneavoastra",
    "vb": "vorbim", "cf": "conform", "asap": "asap", "urg": "urgent",
    "lead-ul": "leadul", "lead-urile": "leadurile", "lead-uri": "leaduri",
    "lead-urilor": "leadurilor", "lead-ului": "leadului",
}  # fmt: skip

# Word families: a stem and the endings its forms take (folded Romanian, English).
_EZ = (
    "ez",
    "ezi",
    "eaza",
    "am",
    "ati",
    "eze",
    "a",
    "at",
    "ata",
    "ate",
    "and",
    "are",
    "area",
    "ari",
    "arile",
    "arii",
)  # programez, programează, programare ...
_A = ("", "i", "a", "am", "ati", "e", "at", "ata", "ate", "are", "area", "ari")  # modific ...
_ESC = ("esc", "esti", "este", "im", "iti", "easca", "it", "ita", "ire", "irea")  # pornesc ...
_NOUN_M = ("", "ul", "ului", "uri", "urile", "urilor")  # acord, acordul, acorduri ...
_NOUN_F = ("a", "e", "ele", "ei", "elor")  # nota, notele ...
_NOUN_RE = ("re", "rea", "ri", "rile", "rii", "rilor")  # programare, programarea ...
_EN_VERB = ("", "s", "ed", "ing")  # a final "e" is dropped before "ed" and "ing"
_FAMILIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("program", "reprogram", "anul", "actualiz", "lans", "declans", "rul", "activ", "not",
      "marc", "evalu", "scor", "salv", "inregistr", "rezerv", "confirm", "seteaz", "edit",
      "corect", "complet", "initi", "consemn"), _EZ),
    (("modific", "verific", "calific", "clasific", "schimb", "caut", "arat", "anunt", "renunt",
      "adaug", "accept", "refuz", "retrag", "semn", "bif", "termin", "finaliz", "contact"), _A),
    (("porn", "gas", "opr"), _ESC),
    (("acord", "raport", "mesaj", "slot", "workflow", "flux", "interval", "control", "implant",
      "status", "lead", "program", "profil", "dosar", "tag"), _NOUN_M),
    (("not", "fis", "etichet", "secvent", "statistic", "ofert", "adres"), _NOUN_F),
    (("programa", "anula", "reprograma", "actualiza", "rezerva", "confirma", "curata",
      "igieniza", "albi", "prelucra", "reaminti", "inregistra", "evalua", "scora", "retrage"),
     _NOUN_RE),
    (("schedule", "cancel", "book", "update", "change", "consent", "message", "text", "assess",
      "qualify", "rate", "score", "trigger", "launch", "start", "finish", "complete", "fail",
      "remind", "record", "register", "withdraw", "decline", "grant", "refuse", "revoke",
      "subscribe", "unsubscribe", "search", "look", "check", "confirm", "correct", "enrol",
      "enroll", "remove", "delete", "share", "process"), _EN_VERB),
)  # fmt: skip
_WORDS: tuple[str, ...] = (
    # Romanian forms outside the families
    "trimite", "trimiteti", "trimitem", "trimit", "trimis", "trimisa", "trimita", "scrie",
    "scrieti", "scris", "sterge", "stergeti", "stearsa", "deschide", "deschideti", "incepe",
    "incepeti", "pacient", "pacientul", "pacienta", "pacientei", "pacientului", "pacienti",
    "pacientii", "pacientilor", "pacientele", "consimtamant", "consimtamantul",
    "consimtaminte", "consimtamintele", "consimtamantului", "disponibil", "disponibila",
    "disponibile", "disponibili", "disponibilitate", "disponibilitatea", "liber", "libera",
    "libere", "liberi", "locuri", "locurile", "locul", "ocupat", "ocupata", "despre",
    "informatii", "informatiile", "detalii", "detaliile", "datele", "numele", "prenumele",
    "prenume", "numarul", "telefonul", "telefon", "emailul", "nasterii", "nastere",
    "prelucrarea", "datelor", "personale", "marketing", "promotii", "promotionale",
    "reclame", "newsletter", "reminder", "remindere", "reamintire", "reamintiri", "terti",
    "tertii", "retras", "retrasa", "retrase", "partajare", "partajarea", "conversie",
    "conversia", "oameni", "persoane",
    "prospecti", "contacte", "cereri", "clienti", "saptamanal", "lunar", "zilnic", "canale",
    "canal", "clasificare", "nurture", "nurturing", "parcursul", "journey", "agentul",
    "automatizare", "automatizarea", "prioritate", "urgent", "urgenta", "whatsapp",
    "confirmare", "confirmarea", "consultatie", "consultatia", "consultatii", "curatare",
    "curatarea", "detartraj", "detartrajul", "igienizare", "extractie", "extractia",
    "albire", "albirea", "fatete", "fatetele", "plomba", "plombe", "coroana", "ortodont",
    "devitalizare", "tratament", "tratamentul", "maine", "poimaine", "astazi", "saptamana",
    "saptamani", "saptamanii", "viitoare", "urmatoare", "urmatoarele", "trecuta", "miercuri",
    "vineri", "sambata", "duminica", "martea", "miercurea", "vinerea", "sambata", "joia",
    "lunea", "dimineata", "dimineata", "seara", "amiaza", "ianuarie", "februarie", "martie",
    "aprilie", "iunie", "iulie", "august", "septembrie", "octombrie", "noiembrie",
    "decembrie", "telefonic", "website", "formular", "formularul", "recomandare",
    "recomandat", "multumesc", "calendar", "calendarul", "agenda", "agendei",
    # English forms outside the families
    "appointment", "appointments", "booking", "bookings", "cancelled", "canceled",
    "cancellation", "cancelling", "unbook", "reschedule", "rescheduled", "messages",
    "patient", "patients", "whoever", "details", "profile", "record", "records", "number",
    "email", "address", "birthday", "surname", "available", "availability", "openings",
    "slots", "schedule", "calendar", "tomorrow", "today", "monday", "tuesday", "wednesday",
    "thursday", "friday", "saturday", "sunday", "morning", "afternoon", "evening", "tonight",
    "month", "week", "january", "february", "march", "april", "june", "july", "september",
    "october", "november", "december", "consents", "permission", "marketing", "reminders",
    "promotions", "promotional", "newsletter", "treatment", "updates", "third", "party",
    "sharing", "processing", "analytics", "statistics", "report", "reports", "breakdown",
    "conversion", "leads", "inquiries", "prospects", "scoring", "triage", "classify",
    "evaluate", "workflow", "workflows", "sequence", "nurture", "nurturing", "journey",
    "status", "progress", "running", "stopped", "please", "whitening", "cleaning",
    "extraction", "consultation", "filling", "checkup", "crown", "veneers", "implant",
    "implants", "braces", "referral", "website", "phone", "called", "yesterday",
)  # fmt: skip


def _form(stem: str, ending: str) -> str:
    if ending in ("ed", "ing") and stem.endswith("e"):
        return stem[:-1] + ending  # scheduled, scheduling
    if ending in ("ed", "s") and stem.endswith("y"):
        return stem[:-1] + ("ied" if ending == "ed" else "ies")  # qualified, qualifies
    return stem + ending


VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [_form(stem, end) for stems, endings in _FAMILIES for stem in stems for end in endings]
        + list(_WORDS)
    )
)
"""Every word cues and value finders know; the targets of typo correction."""

_MIN_TYPO_LENGTH = 5
_WORD = re.compile(r"[a-z]+(?:-(?:ul|uri|urile|urilor|ului))?")


@dataclass
class Canonical:
    """A masked text with its words rewritten, and how to map offsets back."""

    text: str
    # (start, end, note) of each rewritten word, offsets in the source text
    corrections: list[tuple[int, int, str]] = field(default_factory=list)
    # (offset in the source just after a rewritten word, length change so far)
    _shifts: list[tuple[int, int]] = field(default_factory=list)

    def source_offset(self, offset: int) -> int:
        """Where ``offset`` of ``text`` (not inside a rewritten word) comes from in the source."""
        shift = 0
        for end, total in self._shifts:
            if end + total > offset:
                break
            shift = total
        return offset - shift

    def notes(self, start: int, end: int) -> list[str]:
        """What was rewritten inside ``[start, end)`` of the source, for the evidence."""
        return [note for s, e, note in self.corrections if start <= s and e <= end]

    def offset(self, source_offset: int) -> int:
        """Where ``source_offset`` (not inside a rewritten word) lands in ``text``."""
        shift = 0
        for end, total in self._shifts:
            if end > source_offset:
                break
            shift = total
        return source_offset + shift


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@lru_cache(maxsize=1)
def _index() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    vocabulary = frozenset(w for w in VOCABULARY if len(w) >= _MIN_TYPO_LENGTH)
    index: dict[str, list[str]] = {}
    for word in VOCABULARY:
        if len(word) < _MIN_TYPO_LENGTH:
            continue
        for key in {word, *_deletions(word)}:
            bucket = index.setdefault(key, [])
            if word not in bucket:
                bucket.append(word)
    return vocabulary, {k: tuple(v) for k, v in index.items()}


@lru_cache(maxsize=8192)
def correct(word: str) -> str | None:
    """The vocabulary word ``word`` is one typo away from, or None.

    Known words, short words and words near two different vocabulary words are
    left alone. Among several readings the one that keeps the first letter wins, then
    the one sharing the longest beginning ("cancl" is "cancel", not "canal"), then a
    same-length one (substitution, swap), then the vocabulary's order.
    """
    vocabulary, index = _index()
    if len(word) < _MIN_TYPO_LENGTH or word in vocabulary or word in KNOWN_WORDS:
        return None
    candidates: list[str] = []
    for key in {word, *_deletions(word)}:
        for target in index.get(key, ()):
            if target not in candidates and within_one_edit(word, target):
                candidates.append(target)
    if not candidates:
        return None
    order = _order()
    candidates.sort(
        key=lambda t: (t[0] != word[0], -_common_prefix(t, word), len(t) != len(word), order[t])
    )
    return candidates[0]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@lru_cache(maxsize=1)
def _order() -> dict[str, int]:
    return {w: i for i, w in enumerate(VOCABULARY)}


def canonical(masked: str) -> Canonical:
    """Rewrite the abbreviations and one-typo words of folded, masked ``masked``."""
    parts: list[str] = []
    corrections: list[tuple[int, int, str]] = []
    shifts: list[tuple[int, int]] = []
    position = total = 0
    for m in _WORD.finditer(masked):
        word = m.group(0)
        if m.start() > 0 and (masked[m.start() - 1] in "#_" or masked[m.start() - 1].isdigit()):
            continue  # part of a masked value or an id
        replacement = ABBREVIATIONS.get(word)
        kind = "abbreviation"
        if replacement is None:
            replacement = correct(word)
            kind = "typo"
        if replacement is None or replacement == word:
            continue
        parts.append(masked[position : m.start()])
        parts.append(replacement)
        position = m.end()
        total += len(replacement) - len(word)
        shifts.append((m.end(), total))
        corrections.append((m.start(), m.end(), f"{kind}: '{word}' read as '{replacement}'"))
    parts.append(masked[position:])
    return Canonical("".join(parts), corrections, shifts)
