"""The words that point to each gateway function, with how strongly they do.

A cue is a regular expression over the canonical text of a request (folded, values
masked, abbreviations expanded and one-letter typos corrected: see ``spans`` and
``lexicon``) and a weight in (0, 1): the probability-like strength of that evidence
alone. A function's keyword score is the noisy-OR of its matched cues,
``1 - Π(1 - w)``, then multiplied by ``1 - w`` for each matched penalty (words that
point *away* from it). Each word counts once per function: a weaker cue whose match
overlaps a stronger one adds nothing. A piece of a sentence whose word cues alone
reach ``TRIGGER_WEIGHT`` may start a new request.

Cues are written from word *families*, not from sentences: a verb's Romanian forms
(imperative, indicative, subjunctive, infinitive, with or without clitics such as
"-l", "-i", "-mi"), its English forms and its colloquial synonyms, and the nouns
it goes with. Values found in the request (an appointment id, a workflow id, a
service, a day ...) add their own evidence (``ENTITY_WEIGHTS``, ``COMBOS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.intent.models import FunctionName

TRIGGER_WEIGHT = 0.45

# Imperatives that open a request of their own, with their clitics (folded): free text
# (a message, a note, a tag list) ends before "... și programează-l mâine", "..., then
# book him". Words a message to a patient would use are not read as requests:
# "verifică-ți emailul", "trimiteți-ne", "și da, ...", "send us", "start using ...".
REQUEST_VERB = (
    r"(?:(?:re)?programeaza?|anuleaza?|trimite|scrie|verifica|cauta|gaseste|actualizeaza?|"
    r"modifica|schimba|seteaza?|noteaza?|adauga|inregistreaza?|salveaza?|marcheaza?|porneste|"
    r"lanseaza?|ruleaza?|declanseaza?|scoreaza?|evalueaza?|califica|arata|pune|baga|muta|spune|"
    r"afla|vezi|(?:da|fa|zi)(?=-)|(?:re)?book|(?:re)?schedule|cancel|send|text|whatsapp|check|"
    r"verify|find|update|change|set|note|add|record|log|start|launch|run|trigger|kick|score|"
    r"qualify|move|enrol+|remind|mark|tag|(?:show|tell|give|get) me|look (?:up|at|into)|"
    r"pull up|put (?:him|her|them|#))(?:-(?:l|o|i|le|mi|ma))*\b(?!-)"
    r"(?!\s+(?:your|you|us|our|yourself|using|brushing|well|forward|after|it|this)\b)"
)


@dataclass(frozen=True)
class Cue:
    """One piece of keyword evidence for (or, as a penalty, against) a function."""

    label: str
    pattern: re.Pattern[str]
    weight: float


def _cue(label: str, pattern: str, weight: float) -> Cue:
    return Cue(label, re.compile(pattern), weight)


def _ez(stem: str) -> str:
    """The forms of a first-conjugation "-ez" verb: programez, programează, programați ..."""
    return rf"{stem}(?:ez|ezi|eaza|eaz|eza|eze|am|ati|a|and|ati)"


# --- word families ------------------------------------------------------------------------

_PATIENT = r"\b(?:pacient\w*|patient\w*|client\w*)"
_PATIENT_NOUN = r"(?:pacient\w*|patient\w*)"
_FIND = (
    r"(?:cauta\w*|caut|cauti|gase\w*|gasi\w*|find|finds|look\w*\s+up|lookup|search\w*|"
    r"deschide\w*|open|arata\w*|show(?:\s+me)?|afiseaza\w*|scoate\w*|pull\w*(?:\s+up)?|"
    r"bring\w*\s+up|fetch\w*|retrieve\w*|get\s+me|vezi|vedeti|da-mi|dati-mi|give\s+me|"
    r"look\s+(?:him|her|them|it|#+)\s+up|gaseste-l|gaseste-o|cauta-l|cauta-o)"
)
_CONSENT = (
    r"(?:acord\w*|consimt\w*|consent\w*|gdpr|permisiun\w*|permission\w*|opt(?:ed)?[\s-]?in\w*|"
    r"opt(?:ed)?[\s-]?out|sign[\s-]?off|aprobar\w*)"
)
_LEAD_ONE = r"\blead(?:ul|-ul|ului|-ului)?\b(?![\s-]scoring)"
_LEAD_MANY = r"\blead(?:uri|-uri|urile|-urile|urilor|-urilor|s)\b"
_LEADISH = (
    r"(?:lead\w*|contacte|contacts?|cereri|inquir\w*|enquir\w*|prospect\w*|solicitari\w*|"
    r"clienti noi|pacienti noi|new patients|new clients|potential\w* client\w*|hot|warm|cold|"
    r"unqualified)"
)
_SERVICE = (
    r"(?:consult\w*|curata\w*|detartraj\w*|igieniz\w*|profilaxi\w*|cleaning|scaling|"
    r"implant\w*|extracti\w*|extract\w*|albir\w*|whiten\w*|fatet\w*|veneer\w*|plomb\w*|"
    r"filling\w*|carie\w*|cavit\w*|control\w*|check[\s-]?ups?|coroan\w*|crowns?|"
    r"canal\w*|root\s+canal|devitaliz\w*|ortodon\w*|orthodont\w*|braces|aparat\w*\s+dentar|"
    r"all[\s-]*on[\s-]*\w+|tratament\w*|treatment|evaluare|cleaning)"
)
_BIRTH_FIELD = (
    r"\b(?:data nasterii|data de nastere|ziua de nastere|date of birth|birth ?date|birthday|dob)"
)
_CONTACT_FIELD = (
    r"\b(?:e-?mail\w*|adresa de (?:e-?)?mail|telefon\w*|numar\w* de telefon|phone(?: number)?|"
    r"mobil\w*)"
)
_NAME_FIELD = (
    r"\b(?:numele de familie|numele|prenumele|first name|last name|surname|family name|"
    r"name)(?:'s)?"
)
_IS_NOW = (
    r"(?:\s+(?:e|este|is|was|era|will be|va fi)\b|\s*[:=])\s*(?:acum\s+|now\s+|de fapt\s+|"
    r"actually\s+|in fact\s+|on\s+|pe\s+|in\s+|the\s+)?"
)
_NAME_IS = (
    rf"[^.?!;]{{0,20}}?{_IS_NOW}(?!(?:corect|gresit|wrong|right|missing|lipsa|incomplet|ok|bine|"
    r"scris|spelled|written|empty|gol)\b)[a-z]"
)
# A statement, not a question ending in "?" ("Emailul lui pat-3 e a@b.ro?" asks).
_NOT_ASKED = r"(?![^.!;]*\?)"
_MONTH_NAMES = (
    r"ianuarie|februarie|martie|aprilie|mai|iunie|iulie|august|septembrie|octombrie|noiembrie|"
    r"decembrie|january|february|march|april|may|june|july|september|october|november|december"
)
_APPOINTMENT_NOUN = r"(?:programar\w*|appointment\w*|rezervar\w*|booking|vizit\w*|visit)"
_SCHEDULE_VERB = rf"\b(?:re)?(?:{_ez('program')}|programeaz\w*|reschedul\w*)\b"
_BOOK_VERB = (
    r"\b(?:re-?)?(?:book|books|booked|reserv\w*|rezerv\w*|arrange|schedul(?:e|es|ed|ing))\b"
    r"(?<!\bthe schedule)(?<!\bmy schedule)(?<!\bour schedule)(?<!\byour schedule)"
    r"(?<!\bhis schedule)(?<!\bher schedule)(?<!\btheir schedule)(?<!\bdoctor's schedule)"
    r"(?![\s-]+agent)"
)
_MAKE = (
    r"(?:fa|fa-i|fa-le|fa-mi|faceti|faceti-i|fac|face|facem|vreau|vrea|vrem|vor|doresc|"
    r"doreste|dori|dorim|doriti|need|needs|want|wants|like|make|set\s+up|get|aranjeaza|"
    r"stabileste|stabiliti|fixeaza|fixati|creeaza|creati|create|deschide|cere|cer|"
    r"solicita|trebuie|ar trebui|as vrea|as dori|would like|have|are nevoie de|am nevoie de)"
)
_DELETE = (
    r"(?:sterge\w*|scoate\w*|elimina\w*|delete\w*|remove\w*|take\s+(?:[\w#'-]+\s+)?off|drop|"
    r"scrap|scratch|kill|clear|nix|scoateti|desfiinteaz\w*|un-?book\w*|desprogram\w*|"
    r"free\s+up|elibereaz\w*|void|invalid\w*)"
)
_SEND = (
    r"(?:trimit\w*|send\w*|expedia\w*|transmit\w*|forward\w*|shoot|trimite-i|raspunde-i|"
    r"raspundeti-i|reply|respond)"
)
_START = (
    r"(?:porn\w*|lans\w*|declans\w*|rul(?:eaza|ati|ezi|ez|a|am)|(?:re-?)?start\w*|"
    r"(?:re-?)?trigger\w*|(?:re-?)?run|"
    r"launch\w*|kick\w*\s+off|initiaz\w*|initiate|activ(?:eaza|ati|ez)|incepe\w*|begin|"
    r"spin\w*\s+up|fire\w*\s+off|enrol\w*|execut\w*|queue)"
)
_STATUS_GRANTED = (
    r"\b(?:(?:acord\w*|consimt\w*|consent\w*)\s+(?:primit|obtinut|received|obtained|collected)|"
    r"si-a dat|si a dat|isi da|a dat|a fost de acord|este de acord|e de acord|"
    r"sunt de acord|a acceptat|accepta|a bifat|a semnat|a confirmat ca (?:vrea|doreste)|"
    r"a raspuns (?:cu )?da|a zis da|a spus da|said yes|replied yes|answered yes|"
    r"agreed|agrees|granted|accepted|signed|semnat\w*|ticked|"
    r"(?:raspuns\w*|reply|replied|answer\w*|zis|spus)\s*:?\s*(?:cu\s+)?(?:da|yes)|"
    r"(?:acord\w*|consent\w*|consimt\w*|opt-in)[^.?!,;]{0,30}:\s*(?:da|yes|ok|accept\w*)|"
    r"gave (?:\w+ ){0,2}(?:consent|permission)|given (?:\w+ ){0,2}consent|opted in|opts in|"
    r"consented)\b|(?:^|[:,;-])\s*(?:da|yes)\s+(?:la|to|pentru|for)\b"
)
_STATUS_WITHDRAWN = (
    r"\b(?:si-a retras|si a retras|a retras|retrage\w*|retras\w*|revoc\w*|withdr[ae]w\w*|"
    r"revoke\w*|opted out|opts? out|unsubscrib\w*|dezabon\w*|stop|no longer wants?|"
    r"nu mai (?:vrea|doreste) sa (?:primeasca|fie contactat\w*)|sa nu mai (?:primeasca|primesc|"
    r"fie contactat\w*|fie sunat\w*)|to stop (?:receiving|getting|sending)|"
    r"(?:asked|wants?) (?:us )?to stop|no longer (?:wishes|wish) to)\b"
)
_STATUS_DENIED = (
    r"\b(?:a refuzat|refuz\w*|nu (?:e|este|a fost|mai e|mai este) de acord|declined|"
    r"refused|denied|said no|replied no|answered no|a raspuns (?:cu )?nu|a zis nu|a spus nu|"
    r"nu (?:mai )?vrea|nu doreste|does ?n[o']t (?:want|agree)|did ?n[o']t agree|"
    r"(?:acord\w*|consent\w*|consimt\w*|opt-in)[^.?!,;]{0,30}:\s*(?:nu|no|refuz\w*))\b|"
    r"(?:^|[:,;-])\s*(?:nu|no)\s+(?:la|to|pentru|for)\b"
)
STATUS_PATTERNS = {
    "denied": re.compile(_STATUS_DENIED),
    "withdrawn": re.compile(_STATUS_WITHDRAWN),
    "granted": re.compile(_STATUS_GRANTED),
}
_PERMISSION_QUESTION = (
    r"\b(?:avem voie|are voie|au voie|am voie|are dreptul|avem dreptul|are we allowed|"
    r"am i allowed|allowed to|is it ok(?:ay)? to|ok to (?:send|contact|text|email|message)|"
    r"e ok sa|e in regula sa|se poate sa|putem sa|putem (?:trimite|contacta|scrie|suna)|"
    r"pot sa(?:-i| ii| le)? (?:trimit|scriu|contactez|sun|trimitem)|"
    r"pot (?:trimite|scrie|contacta)|poate primi|can receive|may (?:we|i) "
    r"(?:send|message|contact|text|email)|can (?:we|i) (?:send|message|contact|text|email|"
    r"whatsapp|sms|market))\b"
)
_QUESTION_WHEN = r"\b(?:cand|when|la ce ora|what time|ce zi|which day|what day|in ce zi)\b"

CUES: dict[FunctionName, tuple[Cue, ...]] = {
    "score_lead": (
        _cue(
            "score verb",
            r"\bscor(?:eaza|eaz|eza|ez|ezi|eze|am|ati|e|es|ed|ul|ului|ing)?\b"
            r"(?<!lead[\s-]scoring)",
            0.6,
        ),
        _cue(
            "qualify verb",
            r"\b(?:calific\w*|qualif\w*|evalu(?:eaza|eaz|eza|ez|ezi|eze|ati|am|a|and)|evaluate|"
            r"assess\w*|rate|grade|clasific\w*|classify|triaj\w*|triage\w*)\b",
            0.45,
        ),
        _cue(
            "rate them",
            r"\b(?:evalueaza|evaluati|califica|calificati|clasifica|scoreaza|puncteaza)-(?:l|o|i|le)\b|"
            r"\b(?:rate|assess|qualify|score|grade|triage)\s+(?:him|her|them|it|#)",
            0.6,
        ),
        _cue(
            "reached us",
            r"\b(?:ne-a (?:scris|sunat|contactat|gasit)|ne-au (?:scris|sunat|contactat)|"
            r"reached out|contacted us|found us|came (?:in )?(?:from|through|via)|"
            r"venit (?:de pe|din|prin|pe)|inbound)\b",
            0.3,
        ),
        _cue(
            "how is the lead",
            r"\b(?P<w>cum (?:e|este|arata|ti se pare)|how(?:'s| is| does)|ce parere ai de(?:spre)?)"
            r"\s+(?:\w+\s+)?lead\w*",
            0.4,
        ),
        _cue("new lead", r"\b(?:lead nou|new lead|inbound lead)\b", 0.35),
        _cue("a lead", _LEAD_ONE, 0.35),
        _cue(
            "how good is the lead",
            r"\b(?:cat de (?:cald|fierbinte|bun|serios|calificat|promitator|interesat)\w*|"
            r"how (?:hot|warm|good|serious|promising|qualified|interested)|e bun|este bun|"
            r"merita|worth|is (?:it|this|that|he|she)? ?(?:a )?(?:good|hot|warm|cold|serious|"
            r"promising)|(?:e|este|is)\s+(?:\w+\s+)?(?:cald|calda|fierbinte|rece|hot|warm|cold|"
            r"calificat|serios)|cald sau rece|hot or (?:cold|not)|"
            r"(?:is|e|este)\s+#+\s+(?:a |an |un )?"
            r"(?:hot|warm|cold|good|serious|promising|qualified|cald|bun|serios))\b",
            0.4,
        ),
    ),
    "get_patient": (
        _cue(
            "find the patient",
            rf"\b{_FIND}\b.{{0,30}}?\b(?:pacient\w*|patient\w*|fis[ae]\w*|dosar\w*|record\w*|"
            r"profil\w*|file|chart|card\w*|details|detalii\w*|istoric\w*|history)",
            0.7,
        ),
        _cue(
            "find this value",
            rf"\b{_FIND}(?:-[lo]|-mi)?\b(?:\s+(?:whoever|who|the|a|an|person|one|anyone|"
            r"someone|pacient\w*|patient|persoana|cel|cea|care|pe|with|cu|has|have|are|are|"
            r"e-?mail\w*|mail\w*|adres\w*|telefon\w*|phone|number|numar\w*|id\w*|emailul)){0,6}"
            r"\s*#",
            0.6,
        ),
        _cue(
            "find them",
            r"\b(?:look\s+(?:him|her|them)\s+up|"
            r"(?:find|search for|pull up|bring up) (?:him|her|them)|"
            r"(?:cauta|gaseste|gasiti|cautati|arata|aratati)-(?:l|o|i|mi-l|mi-o)|"
            r"(?:pull|bring|open|get|show)\s+(?:up\s+)?(?:his|her|their)\s+(?:file|record|chart|"
            r"details|profile|data))\b",
            0.55,
        ),
        _cue(
            "someone's file",
            r"#(?:'s|s')\s+(?:\w+\s+)?(?:file|record|chart|details|profile|info|card|data)\b",
            0.6,
        ),
        _cue(
            "what do we know",
            r"\b(?:what do we (?:know|have)|what have we got|ce (?:stim|stiti|avem|date avem|"
            r"informatii avem|info avem))\b.{0,15}\b(?:about|despre|on|pe)\b"
            r"|\b(?:tell me about|spune-mi despre|informatii despre|info(?:rmation)? (?:on|about)|"
            r"everything (?:on|about)|tot ce avem despre)\b",
            0.6,
        ),
        _cue("patient file", r"\bfis(?:a|ei|ele)\b|\b(?:chart|dosarul)\b", 0.45),
        _cue(
            "patient look-up",
            r"\b(?:pacient\w*|patient\w*)\s+(?:lookup|look-up|search|cautare|info|details|detalii|"
            r"data|date|profile?|record|file)\b|\b(?:date|info|detalii)\s+(?:despre\s+)?"
            r"(?:pacient\w*|#)",
            0.6,
        ),
        _cue(
            "asks a patient's contact details",
            r"#(?:'s|s')?\s+(?:phone|email|e-mail|number|address|date of birth|birthday|dob|"
            r"contact)\w*|\b(?:numar\w*|telefon\w*|e-?mail\w*|mail\w*|adres\w*|data nasterii|"
            r"contact\w*)\b(?:\s+de\s+(?:telefon|contact|e-?mail))?\s+(?:al|a|ale|lui|pentru|for|of)"
            r"\s+(?:lui\s+|pacient\w*\s+)?#",
            0.5,
        ),
        _cue(
            "whose is it",
            r"\b(?:who does|whose|al cui|a cui|ale cui|cui ii apartine|cui apartine|belongs? to|"
            r"apartine)\b.{0,30}#|\b(?:registered|listed|saved|inregistrat\w*|trecut\w*|"
            r"salvat\w*)\s+(?:under|with|cu|pe|sub)\s+#",
            0.6,
        ),
        _cue(
            "a value's details",
            r"#\W{0,3}(?:profil\w*|fisa|dosar\w*|detalii\w*|details|file|record|info)\b",
            0.5,
        ),
        _cue(
            "patient details",
            r"\b(?:fisa|dosarul|detalii\w*|details|informatii\w*|info|datele|date de contact|"
            r"contact details|contact info|profile?|profilul|istoric\w*|history|"
            r"medical record)\b.{0,25}"
            r"(?:\b(?:pacient\w*|patient\w*)|#)",
            0.6,
        ),
        _cue(
            "one of our patients",
            r"\b(?:one of our|among our|unul dintre|una dintre)\s+(?:patients|pacient\w*)",
            0.6,
        ),
        _cue(
            "who is the patient",
            rf"\b(?:cine (?:e|este)|who is|who's)\b.{{0,15}}(?:{_PATIENT}|#)|"
            r"\b(?:who|cine)\s+#+\s+(?:is|e|este)\b",
            0.7,
        ),
        _cue(
            "do we have the patient",
            rf"\b(?:avem|exista|is there|do we have)\b.{{0,40}}{_PATIENT}"
            r"|\b(?:anyone|anybody|someone|cineva|vreun pacient|vreo pacienta)\b.{0,30}#",
            0.55,
        ),
        _cue(
            "in the database",
            r"\b(?:e|este|exista|avem|is|are|do we have|have we got|we have|have we|figureaza|"
            r"anyone|someone|cineva|does|do|has|have|are|au)\b.{0,40}"
            r"\b(?:in baza de date|in the database|in our (?:system|records|database)|in sistem|"
            r"in evidenta|on file|in the system)\b",
            0.5,
        ),
        _cue("find verb", r"\b(?:cauta|gaseste|find|look\w*\s+up|search)\b", 0.35),
        _cue("patient", _PATIENT, 0.2),
    ),
    "update_patient": (
        _cue(
            "update verb",
            r"\b(?:actualiz\w*|modific\w*|schimb\w*|corect\w*|update\w*|change\w*|edit\w*|"
            r"seteaza|set|trece-i|treceti-i|completeaza|fix|amend\w*|correct|replace|"
            r"inlocuieste|rectific\w*|pune-i)\b",
            0.45,
        ),
        _cue(
            "update the patient",
            r"\b(?:actualiz\w*|modific\w*|update\w*|edit\w*|corect\w*|amend\w*)\b\s+"
            r"(?:the\s+|a\s+|her\s+|his\s+)?(?:pacient\w*|patient\w*|fisa\w*|datele|profil\w*|"
            r"record|file|details|#)",
            0.65,
        ),
        _cue(
            "patient field",
            r"\b(?:e-?mail\w*|mail|mailul|telefon\w*|phone(?: number)?|nume|numele|prenume\w*|"
            r"first name|"
            r"last name|surname|data nasterii|date of birth|birth ?date|birthday|dob|"
            r"data de nastere|not[ae]|notita\w*|"
            r"eticheta\w*|tag\w*|adres\w*|address)\b",
            0.3,
        ),
        _cue(
            "a field is now",
            r"\b(?:e-?mail\w*|mail\w*|telefon\w*|phone|numar\w*|number|nume\w*|prenume\w*|"
            r"name|surname|adres\w*|address)\b.{0,25}\b(?:is now|e acum|este acum|acum e|"
            r"acum este|is actually|e de fapt|este de fapt|has changed|s-a schimbat|devine|"
            r"becomes|should be|ar trebui sa fie|trebuie sa fie|is spelled|spelled|se scrie|"
            r"is written|should read)\b"
            r"|\b(?:noul|noua|new)\s+(?:e-?mail\w*|mail\w*|telefon\w*|phone|numar\w*|number|"
            r"nume\w*|prenume\w*|name|surname|adres\w*|address)\b"
            r"|\b(?:e-?mail\w*|mail\w*|telefon\w*|numar\w*|nume\w*|adres\w*)\s+(?:nou|noua)\b"
            r"|\b(?:si-a schimbat|changed (?:her|his|their))\b"
            r"|\b(?:e-?mail\w*|mail\w*|telefon\w*|phone|numar\w*|number|nume\w*|prenume\w*|"
            r"name|surname|adres\w*|address)\s+(?:is|e|este)\s+\S+\s+(?:now|acum)\b",
            0.55,
        ),
        _cue(
            "a change of name",
            r"\b(?:got married|s-a maritat|s-a casatorit|got divorced|a divortat|"
            r"changed (?:her|his) name|si-a schimbat numele)\b",
            0.3,
        ),
        _cue(
            "add a note or tag",
            r"\b(?:adauga\w*|add|pune\w*|put|leave|jot|noteaza|notati|scrie\w*|write|attach|"
            r"ataseaza)\b.{0,25}"
            r"\b(?:nota|notita|note|notes|notele|etichet\w*|tag\w*|label|observati\w*|"
            r"mentiune)\b",
            0.7,
        ),
        _cue("note verb", r"\b(?:noteaza|notati)\b", 0.5),
        _cue(
            "notes a fact",
            r"\b(?:record|note|log|noteaza|notati|retine|retineti|remember|mention\w*)\b\s+"
            r"(?:that|ca)\s+#+\s+(?:is|has|was|e|este|are|a|nu|prefera|prefers|needs)\b",
            0.6,
        ),
        _cue(
            "write in the file",
            r"\b(?:noteaza|notati|scrie\w*|trece\w*|adauga\w*|pune\w*|add|write|put|record)\b"
            r".{0,20}\b(?:in|la|on|to|into)\s+(?:the\s+|her\s+|his\s+|#+(?:'s)?\s+)?"
            r"(?:fisa|dosar|file|record|profil|chart)\w*",
            0.65,
        ),
        _cue(
            "tag verb",
            r"\b(?:tag|label|eticheteaz\w*|etichetati)(?:-[lo])?\s+"
            r"(?:#|him|her|them|pe|the patient|pacient\w*|patient)",
            0.6,
        ),
        _cue(
            "a field has a value",
            rf"(?:(?:{_BIRTH_FIELD})(?:'s)?\b[^.?!;]{{0,30}}?{_IS_NOW}(?:\d|(?:{_MONTH_NAMES})\b)"
            rf"|(?:{_CONTACT_FIELD})(?:'s)?\b[^.?!;]{{0,30}}?\s+(?:e|este|is|was|era|will be|"
            r"va fi)\s+(?:acum\s+|now\s+|de fapt\s+|actually\s+|in fact\s+)?#"
            rf"|(?:#(?:'s)?\s+|\b(?:her|his|their)\s+)(?:{_NAME_FIELD})\b{_NAME_IS}"
            rf"|(?:{_NAME_FIELD})\s+(?:(?:al|a|of|lui|ei|pentru|for|the)\s+)*"
            rf"(?:pacient\w*\s+|patient\s+)?#+{_NAME_IS}){_NOT_ASKED}",
            0.55,
        ),
        _cue(
            "is called",
            r"#\s*,?\s+(?:se numeste|se cheama|is called|is named|goes by)\s+"
            rf"(?:de fapt\s+|actually\s+|acum\s+|now\s+)?[a-z]{_NOT_ASKED}",
            0.55,
        ),
        _cue(
            "born on a date",
            r"\b(?:s-a nascut|nascut\w*|born)\b\s+(?:(?:on|in|pe|in data de|la|the)\s+)*"
            rf"(?:\d|(?:{_MONTH_NAMES})\b){_NOT_ASKED}",
            0.55,
        ),
    ),
    "schedule_appointment": (
        _cue("schedule verb", _SCHEDULE_VERB, 0.7),
        _cue(
            "make an appointment",
            rf"\b{_MAKE}\b.{{0,40}}\b(?:programar\w*|appointment\w*|rezervar\w*)",
            0.65,
        ),
        _cue(
            "wants a treatment",
            rf"\b(?:vreau|vrea|vrem|doresc|doreste|dorim|as vrea|as dori|ar dori|ar vrea|"
            rf"would like|wants?|needs?|am nevoie de|are nevoie de|cauta|looking for)\b"
            rf".{{0,25}}\b{_SERVICE}",
            0.45,
        ),
        _cue(
            "make another",
            r"\b(?:fa|fa-i|fa-le|fa-mi|faceti|faceti-i|make|book|schedule|da-i|dati-i|"
            r"programeaza)\b.{0,12}\b(?:alta|alta programare|una noua|another(?: one)?|"
            r"a new one)\b",
            0.6,
        ),
        _cue(
            "come in for",
            r"\b(?:vreau|vrea|vrem|doresc|dori|putea|pot|poate|want|wants|like|could|can)\s+"
            r"(?:sa\s+)?(?:vin|vina|veni|venim|come|ajung|ajunga|pop in|drop by)\b",
            0.6,
        ),
        _cue(
            "slot someone in",
            r"\b(?:put|pencil|slot|squeeze|fit|get|book|pop)\b[^.?!]{0,25}?"
            r"\b(?:in|down)\b\s+(?:for|on|at|tomorrow|today|next|this)\b"
            r"|\b(?:pencil|slot|squeeze|fit)\b\s+(?:\S+\s+){1,3}?in\b",
            0.6,
        ),
        _cue("book verb", _BOOK_VERB, 0.65),
        _cue(
            "move the appointment",
            rf"\b(?:muta\w*|mut|move|shift|change|schimba\w*|amana\w*|postpone|push)\b.{{0,25}}"
            rf"\b{_APPOINTMENT_NOUN}|\b{_APPOINTMENT_NOUN}\b.{{0,25}}\b(?:mutat\w*|moved|"
            r"shifted|pushed)\b",
            0.6,
        ),
        _cue(
            "put in the agenda",
            r"\b(?:pune|puneti|pun|baga|bagati|bag|trece|treceti|adauga|adaugati|scrie|scrieti|"
            r"noteaza|inscrie|add|put|pencil|pop)\w*(?:-[lo]|-i)?\b.{0,30}"
            r"\b(?:in|pe|to|into|on)\s+(?:the\s+)?(?:agenda|program|calendar|diary|orar)\w*",
            0.6,
        ),
        _cue(
            "put someone down for a treatment",
            rf"\b(?:trece|treceti|trec|pune|puneti|pun|baga|bagati|bag|inscrie\w*|"
            rf"adauga|adaugati)(?:-[lo]|-i)?\b[^.?!]{{0,40}}\b(?:pentru|la|in|pe|for)\s+"
            rf"(?:o\s+|un\s+|a\s+|an\s+)?{_SERVICE}",
            0.55,
        ),
        _cue(
            "starts with appointment",
            r"^\W*(?:o\s+|new\s+|an?\s+)?(?:programare|appointment)\b",
            0.6,
        ),
        _cue("appointment", rf"\b{_APPOINTMENT_NOUN}\b", 0.3),
    ),
    "get_available_slots": (
        _cue(
            "slot",
            r"\bslot(?:uri\w*|ul\w*|s)?\b(?!\s+(?:#+\S*|him|her|them|me|us)\s+in\b)",
            0.65,
        ),
        _cue(
            "free places",
            r"\b(?:loc|locuri|locurile|locul|ore|ora|orele|intervale|intervalele|interval\w*|"
            r"spots?|times?|zile|zilele|date|datele|goluri|golurile|ferestre|days?|dates?|"
            r"mornings|afternoons|evenings|dimineti|dupa-amiezi|seri)\s+"
            r"(?:are\s+|is\s+|sunt\s+|e\s+)?(?:still\s+|mai\s+)?"
            r"(?:libere?|liber|disponibil\w*|free|available|open)\b",
            0.7,
        ),
        _cue(
            "free slots",
            r"\b(?:free|available|open|libere?)\s+(?:[\w-]+\s+)?(?:slots?|spots?|times?|"
            r"appointments?|hours?|days?|dates?|places?|locuri|ore|windows?|ferestre)\b|"
            r"\b(?:slots?|spots?|times?|appointments?|hours?|windows?)\s+(?:free|available|open)\b",
            0.7,
        ),
        _cue(
            "has something free",
            r"\b(?:are|ai|aveti|avem|au|has|have|e|este|is|mai e|mai este|sunt)\b"
            r"(?:\s+[\w#'-]+){0,3}\s+(?:liber\w*|free|disponibil\w*|available)|"
            r"\b(?:anything|something|ceva)\s+(?:still\s+|mai\s+)?(?:open|free|available|liber|"
            r"disponibil)\b",
            0.6,
        ),
        _cue(
            "are there places",
            r"\b(?:exista|mai sunt|mai e|mai este|mai am|mai avem|mai ai|mai aveti|mai are|"
            r"mai au|sunt|unde|is there|are there|any|vreun|vreo|ceva|got|ar fi|ar mai fi|"
            r"would there be|will there be|ar exista|cand|when|where)\b.{0,20}"
            r"\b(?:locuri|loc|slot\w*|spots?|room|gaps?|goluri|gol|openings?|"
            r"availability|disponibilit\w*|liber\w*)\b",
            0.6,
        ),
        _cue("availability", r"\b(?:disponibil\w*|availab\w*)", 0.55),
        _cue(
            "looking for a place",
            r"\b(?:caut|cautam|cauta|looking for|need|needs|am nevoie de|avem nevoie de|"
            r"trebuie|vreau|want)\s+(?:sa gasesc\s+|to find\s+)?(?:un |o |a |an |some )?"
            r"(?:loc|slot|spot|time|gap|window|fereastra|ora libera)\b",
            0.55,
        ),
        _cue(
            "busy until",
            r"\b(?:pana cand|until when|till when|how long)\b.{0,20}\b(?:ocupat\w*|busy|booked)\b|"
            r"\b(?:when does|cand se)\b.{0,20}\b(?:free up|elibereaza)\b",
            0.55,
        ),
        _cue("openings", r"\b(?:openings?|gaps?|goluri|golurile|gauri|ferestre libere)\b", 0.55),
        _cue(
            "when free", r"\b(?:cand|when)\b.{0,20}\b(?:liber\w*|free|available|disponibil\w*)", 0.6
        ),
        _cue(
            "when can we book",
            rf"{_QUESTION_WHEN}.{{0,30}}\b(?:program\w*|book\w*|schedul\w*|veni|vina|vin|come|"
            r"fit|rezerv\w*|see|vedea|primi\w*|primeste|squeeze)\b",
            0.6,
        ),
        _cue(
            "earliest",
            r"\b(?:earliest|first available|next available|cel mai apropiat|cea mai apropiata|"
            r"primul loc|prima ora libera|prima zi libera|soonest|cat mai curand)\b",
            0.5,
        ),
        _cue(
            "how busy",
            r"\b(?:cat de (?:plin|ocupat|aglomerat)\w*|how (?:busy|full|booked(?: up| out)?)|"
            r"cum arata (?:agenda|programul|ziua|saptamana)|how does .{0,25}\blook(?:ing)?|"
            r"how(?:'s| is) .{0,25}\blooking)\b",
            0.55,
        ),
        _cue(
            "options",
            r"\b(?:appointment|time|date|slot)s?\s+options\b|\b(?:optiuni|variante)\s+(?:de\s+)?"
            r"(?:programare|ore|zile|data|date)\b|\bwhat options\b|\bce variante\b",
            0.6,
        ),
        _cue(
            "look at the calendar",
            r"\b(?:verific\w*|check\w*|uita-te|look at|vezi|arata\w*|show|cum arata|"
            r"how does|cat de (?:plin|ocupat|aglomerat)|how (?:busy|full|booked))\b.{0,30}"
            r"\b(?:agenda|calendar\w*|programul|orarul|schedule|diary|plin|ocupat|busy|full)\b",
            0.5,
        ),
        _cue(
            "have a place",
            r"\b(?:aveti|avem|ai|have you got|do you have|got)\s+(?:un\s+|vreun\s+|any\s+)?"
            r"(?:loc|locuri|spots?|room)\b",
            0.55,
        ),
        _cue(
            "which places",
            r"\b(?:ce|what|which|care)\s+(?:locuri|ore|sloturi|intervale|slots?|times|zile|"
            r"days|dates)\b|\bwhat(?:'s| is)\s+(?:still\s+)?(?:free|available|open)\b|"
            r"\bce (?:e|este|-i|mai e|avem|aveti) (?:liber|disponibil)\w*",
            0.6,
        ),
        _cue("free", r"\b(?:liber[ae]?|free)\b", 0.3),
    ),
    "cancel_appointment": (
        _cue(
            "cancel verb",
            r"\b(?:anul(?:eaza|eaz|eza|ez|ezi|eze|am|ati|a|are|area|at|ata|and)|"
            r"contramand\w*|desfiinteaz\w*)\b",
            0.75,
        ),
        _cue("cancel", r"\b(?:cancel\w*|call\w* off|annul\w*)", 0.75),
        _cue(
            "scrap it",
            rf"\b(?:scrap|drop|kill|scratch|nix|axe|void)\b.{{0,15}}\b{_APPOINTMENT_NOUN}",
            0.7,
        ),
        _cue(
            "delete the appointment",
            rf"\b{_DELETE}\b.{{0,25}}\b{_APPOINTMENT_NOUN}",
            0.7,
        ),
        _cue(
            "give up the appointment",
            rf"\brenunt\w*\b.{{0,15}}(?:\b{_APPOINTMENT_NOUN}|\b{_SERVICE}|#)",
            0.7,
        ),
        _cue(
            "will not take place",
            r"\bnu mai (?:are loc|se face|se tine|e valabila|este valabila|e nevoie\w*|"
            r"este nevoie\w*|ramane|ramane valabila)\b|\b(?:won'?t|will not|can'?t|cannot|"
            r"isn'?t|is not|not)\s+(?:be\s+)?(?:making it|make it|coming|come|happen\w*|"
            r"take place|going ahead|go ahead|attend\w*|needed)\b|\bno longer\b.{0,20}"
            r"\b(?:needed|coming|happening|needs?|wants?)\b|\b(?:has|have|needs?|must) to go\b|"
            r"\bget rid of\b",
            0.45,
        ),
        _cue(
            "cannot come",
            r"\bnu mai (?:poate|pot|vine|vin|ajunge|ajung|vrea|doreste|putem|vine la)\b",
            0.35,
        ),
    ),
    "send_whatsapp": (
        _cue("send verb", rf"\b{_SEND}\b", 0.45),
        _cue("write verb", r"\bscri(?:e|eti|ei|u|i|em|e-i|eti-i)\b", 0.4),
        _cue("ping", r"\b(?:ping|pinguie\w*|dm)\b", 0.45),
        _cue("message", r"\b(?:mesaj\w*|message\w*|sms\w*|text\w*|notificar\w*)\b", 0.35),
        _cue(
            "on WhatsApp",
            r"(?<!de )\b(?:pe|on|via|prin|through|over|in|cu|with|using|folosind|by)\s+"
            r"(?:un\s+|a\s+)?whats ?app\b",
            0.35,
        ),
        _cue(
            "WhatsApp to a number",
            r"\bwhats ?app\b[\s#]*:|\bwhats ?app\s+(?:to|catre|lui|la)\s+#",
            0.5,
        ),
        _cue(
            "WhatsApp as a verb",
            r"(?<!pe )(?<!on )(?<!via )(?<!de )(?<!prin )(?<!din )(?<!from )(?<!a )(?<!un )"
            r"\bwhats ?app\s+(?:the patient|the|him|her|them|pe|lui|la|#)",
            0.5,
        ),
        _cue(
            "drop a line",
            r"\bdrop\s+(?:\w+\s+)?(?:a\s+)?(?:line|message|note|text|whats ?app)\b",
            0.5,
        ),
        _cue(
            "give a message",
            r"\b(?:da-i|dati-i|da-le|give|lasa-i|lasati-i|leave)\b.{0,15}\b(?:mesaj\w*|message|"
            r"whats ?app|sms|text|semn|un semn|a shout)\b",
            0.5,
        ),
        _cue("WhatsApp", r"\bwhats ?app\b", 0.2),
        _cue(
            "confirm the appointment",
            rf"\bconfirm\w*(?:-i)?\b.{{0,30}}\b{_APPOINTMENT_NOUN}",
            0.3,
        ),
        _cue(
            "tell",
            r"\b(?:zi-i|zi-le|spune-i|spune-le|spuneti-i|anunta-l|anunta-o|anunta-i|anunta-le|"
            r"anuntati-l|anuntati-o|anuntati-i|informeaz\w*|notific\w*|tell|inform\w*|notify|"
            r"let\s+(?:him|her|them|the patient|#+)\s+know|remind(?:s|ed|ing)?|aminteste-i|"
            r"reaminteste-i|reamintiti-i|confirma-i|confirmati-i)\b",
            0.25,
        ),
    ),
    "record_consent": (
        _cue(
            "record verb",
            r"\b(?:inregistr\w*|salveaz\w*|salvati|noteaz\w*|notati|marcheaz\w*|marcati|"
            r"consemn\w*|trece(?:ti)?\s+(?:in sistem|in fisa|in dosar|la dosar)|log|logged|"
            r"register\w*|mark|marks|marked|note (?:that|down)|"
            r"record(?:ed)?(?=\s+(?:that|the|a|his|her|their|consent|acord)))\b",
            0.4,
        ),
        _cue("consent given", _STATUS_GRANTED, 0.55),
        _cue("consent withdrawn", _STATUS_WITHDRAWN, 0.55),
        _cue("consent denied", _STATUS_DENIED, 0.55),
        _cue("consent", rf"\b{_CONSENT}", 0.3),
    ),
    "check_consent": (
        _cue(
            "check consent",
            r"\b(?:verific\w*|check\w*|confirm\w*|arata\w*|show\w*|list\w*|situatia|status|"
            r"vezi|uita-te|see|look|ensure|make sure|asigura-te|asigurati-va|"
            r"double[\s-]check)\b"
            rf".{{0,40}}\b{_CONSENT}",
            0.65,
        ),
        _cue(
            "has consent",
            r"\b(?:are|has|have|do|does|did|a dat|si-a dat|exista|avem|there is|whether|if|daca)\b"
            rf".{{0,40}}\b(?:{_CONSENT}|opted in|opt(?:ed)? out|agreed|de acord|bifat|"
            r"accepted|acceptat|subscribed|abonat\w*)",
            0.45,
        ),
        _cue("are we allowed", _PERMISSION_QUESTION, 0.6),
        _cue(
            "consent check",
            rf"\b{_CONSENT}\s+(?:check\w*|verificare|verifica|status|situatie|lookup)\b",
            0.65,
        ),
        _cue(
            "which consents",
            r"\b(?:ce|what|which|care)\b.{0,15}\b(?:acorduri\w*|consimtamint\w*|consents)\b",
            0.6,
        ),
        _cue("still valid", r"\b(?:valabil\w*|valid\w*|in regula|expir\w*)\b", 0.25),
        _cue(
            "still receives",
            r"\b(?:primeste|primesc|primi|poate primi|receive\w*|gets?|getting)\b.{0,20}"
            r"\b(?:reminder\w*|remind\w*|mesaje|messages|sms\w*|newsletter\w*|e-?mail\w*|"
            r"marketing|oferte|promo\w*|notificari|updates|noutati)",
            0.3,
        ),
        _cue("consent", rf"\b{_CONSENT}", 0.3),
        _cue("is a question", r"\?\s*$", 0.3),
    ),
    "get_lead_analytics": (
        _cue(
            "how many leads",
            r"\b(?:cate|cati|how many|total\w*|count|volum\w*|volume of|cifrele)\b"
            rf".{{0,30}}\b{_LEADISH}|\b(?:numarul de|number of|numbers of|nr de)\s+(?:\w+\s+)?"
            rf"{_LEADISH}",
            0.7,
        ),
        _cue(
            "statistics",
            r"\b(?:statistic\w*|stats|analytics|breakdown|conversi\w*|conversion\w*|metrics|"
            r"metrici|kpi\w*|lead generation|dashboard|trend\w*|evolutia|"
            r"break\w*\s+(?:it\s+|them\s+|this\s+)?down)\b",
            0.5,
        ),
        _cue(
            "report",
            r"\b(?:analiz\w*|raport\w*|report\w*|performant\w*|overview|sumar\w*|summary|"
            r"bilant\w*)\b",
            0.4,
        ),
        _cue(
            "lead numbers",
            r"\blead\w*\s+(?:numbers|count|volume|totals?|figures|stats|flow)\b",
            0.6,
        ),
        _cue(
            "how many new patients",
            r"\b(?:cati|cate|how many)\b.{0,20}\b(?:pacienti noi|new patients|clienti noi|"
            r"new clients|contacte noi|new contacts|persoane|people|oameni)",
            0.6,
        ),
        _cue(
            "how are we doing",
            r"\b(?:cum stam|cum merg|cum a mers|cum au mers|how are we doing|how did we do|"
            r"how (?:are|were|did) (?:the )?leads)\b",
            0.35,
        ),
        _cue("leads", _LEAD_MANY, 0.35),
        _cue(
            "leads over a period",
            rf"\b{_LEADISH}\b.{{0,25}}?\b(?P<w>azi|astazi|ieri|saptaman\w*|luna|lunii|anul|anului|"
            r"trimestr\w*|today|yesterday|week|month|year|quarter|ianuarie|februarie|martie|"
            r"aprilie|mai|iunie|iulie|august|septembrie|octombrie|noiembrie|decembrie|january|"
            r"february|march|april|may|june|july|september|october|november|december|"
            r"ultim\w*|last|past|since|de la|din)\b",
            0.3,
        ),
        _cue("comparison", r"\b(?:vs|versus|compar\w*|fata de)\b", 0.3),
        _cue(
            "we got",
            r"\b(?:am avut|au venit|au intrat|am primit|ne-au contactat|ne-au scris|did we get|"
            r"came in|come in|we got|we had|did we have|have we had|contacted us)\b",
            0.2,
        ),
    ),
    "trigger_workflow": (
        _cue("start verb", rf"\b{_START}\b", 0.45),
        _cue(
            "workflow",
            r"\b(?:workflow\w*|flux\w*|secvent\w*|sequence|journey|parcurs\w*|automati\w*|"
            r"drip)\b",
            0.35,
        ),
        _cue(
            "put into a sequence",
            r"\b(?:pun\w*|baga\w*|bag|adaug\w*|add|put|enrol\w*|inscrie\w*|include\w*|move|"
            r"muta\w*|trece\w*|sign|trimite\w*|send)\b.{0,30}\b(?:secvent\w*|sequence|nurtur\w*|flux\w*|"
            r"workflow\w*|journey|parcurs\w*|drip|booking[\s-]agent\w*)",
            0.6,
        ),
    ),
    "get_workflow_status": (
        _cue("status", r"\b(?:status\w*|starea|stare|stadiu\w*|progres\w*|progress)\b", 0.55),
        _cue(
            "is it done",
            r"(?:\bunde a ajuns|\bunde am ajuns|\bunde (?:suntem|sunteti|se afla) cu|\bcum merge|"
            r"\bcum sta\b|\bs-a terminat|\bs-a finalizat|\ba terminat|\bs-a incheiat|\be gata\b|"
            r"\beste gata\b|\bdone\b|\bfinished\b|\bcompleted?\b|\bmai ruleaza\b|"
            r"\b(?:e|este) (?:tot |inca |)(?:in lucru|in desfasurare|in curs|in executie|"
            r"in progres|activ)\b|\bin lucru\b|\bin desfasurare\b|\bstill (?:running|going|on)\b|"
            r"\bis (?:it )?running\b|\bin progress\b|\bs-a oprit\b|\bstopped\b|\bfailed\b|"
            r"\ba esuat\b|\ba picat\b|\ba crapat\b|\beroare\b|\berror\b|\ba ajuns\b|\bce pas\b|"
            r"\bwhich step\b|\bcurrent step\b|\bwhere are we (?:with|on|at)\b|"
            r"\bwhere (?:is|does) .{0,20}\b(?:at|stand)\b|\bhow far\b|\bhow(?:'s| is) .{0,20}"
            r"\bgoing\b|\bgone through\b|\bsucceeded\b|\bstuck\b|\bblocat\b)",
            0.45,
        ),
        _cue(
            "any news",
            r"\b(?:any (?:update|news)|vreo noutate|ce (?:mai )?face|"
            r"what'?s (?:going on|happening|up) with|ce s-a intamplat cu|update on|"
            r"ce s-a ales de|ce mai e cu|what happened (?:to|with)|what became of|mai merge|"
            r"pasii|pasul|steps)\b",
            0.45,
        ),
        _cue("workflow", r"\b(?:workflow\w*|flux\w*|task\w*|job\w*|run)\b", 0.2),
    ),
}

_NOT = (
    r"\b(?:nu|n-|don'?t|do not|never|no need to|nu e nevoie sa)\s+(?:mai\s+)?"
    r"(?:o\s+|il\s+|ii\s+|le\s+)?"
)


def _negated(verbs: str) -> Cue:
    return _cue("is negated", rf"{_NOT}(?:{verbs})\b", 0.7)


_BEFORE = (
    r"\b(?:before|inainte (?:de a|sa(?:-i|-l|-o|-le)?)|pana sa(?:-i|-l|-o)?)\s+(?:[\w-]+\s+){0,2}?"
)


def _condition(verbs: str) -> Cue:
    return _cue("only a condition", rf"{_BEFORE}(?:sa-i\s+|sa\s+)?(?:{verbs})\b", 0.6)


PENALTIES: dict[FunctionName, tuple[Cue, ...]] = {
    "cancel_appointment": (
        _negated(r"anul\w*|cancel\w*|sterge\w*|delete|remove"),
        _cue(
            "reports what was done",
            r"\b(?:i|we|she|he|they|you|am|ai|ati)\s+(?:just\s+|already\s+|deja\s+)?"
            r"(?:cancel+ed|anulat\w*)\b",
            0.6,
        ),
        _cue(
            "asks who cancelled",
            r"\b(?:cine|who|de ce|why|cand|when)\s+(?:a\s+|has\s+|did\s+)?(?:\w+\s+)?"
            r"(?:anulat|cancel+ed|cancel)\b",
            0.6,
        ),
        _cue(
            "already cancelled",
            r"\b(?:already|deja)\s+(?:\w+\s+)?(?:cancel\w*|anulat\w*)|"
            r"\b(?:was|were|has been|e|este|a fost)\s+(?:deja\s+)?(?:cancel\w*|anulat\w*)\b",
            0.6,
        ),
    ),
    "send_whatsapp": (
        _negated(r"trimit\w*|send|text|message|scrie\w*|write"),
        _condition(r"trimit\w*|send\w*|text\w*|message|scri\w*|write|contact\w*"),
        _cue(
            "reports a message",
            r"\b(?:a|au|ne-a|mi-a|i-a|ne-au|has|have|had|already|deja|who|care)\s+"
            r"(?:mai\s+|deja\s+)?(?:scris|trimis|sent|wrote|texted|messaged)\b|"
            r"\b(?:i|we|she|he|they|you)\s+(?:just\s+|already\s+)?(?:sent|texted|messaged|wrote)\b|"
            r"\b(?:messaged|texted|wrote to|whatsapped|wrote)\s+(?:us|me|the clinic|clinica)\b|"
            r"\bne-a (?:scris|trimis)\b",
            0.5,
        ),
        _cue("asks permission", _PERMISSION_QUESTION, 0.6),
        _cue(
            "reports a consent answer",
            rf"(?:{_STATUS_GRANTED}|{_STATUS_WITHDRAWN}|{_STATUS_DENIED})",
            0.4,
        ),
    ),
    "schedule_appointment": (
        _negated(r"program\w*|book|schedule|rezerv\w*"),
        _cue("asks what is free", r"\b(?:availab\w*|disponibil\w*|liber[ae]?|free)\b", 0.3),
        _cue("asks when", rf"{_QUESTION_WHEN}", 0.45),
        _cue(
            "booking is a condition",
            r"\b(?:before|inainte (?:sa|de a)|ca sa|in order to|so (?:that )?(?:i|we) can)\s+"
            r"(?:i |we |il |o |ii |le |)(?:book|schedule|program\w*)",
            0.6,
        ),
        _cue(
            "reports what was done",
            r"\b(?:i|we|she|he|they|you|am|ai|ati)\s+(?:just\s+|already\s+|deja\s+)?"
            r"(?:booked|scheduled|programat\w*|rezervat\w*)\b",
            0.6,
        ),
        _cue(
            "already booked",
            r"\b(?:already|deja)\s+(?:\w+\s+)?(?:booked|scheduled|programat\w*|rezervat\w*)|"
            r"\b(?:booked|scheduled) (?:herself|himself|themselves|online)\b|"
            r"\b(?:s-a|a|au|am|e|este|is|was|were|has been|have been|has|have)\s+(?:deja\s+)?"
            r"(?:programat\w*|booked|scheduled|rezervat\w*)\b",
            0.6,
        ),
        _cue(
            "reports a past visit",
            r"\b(?:a|au|am)\s+(?:venit|fost|avut|facut|terminat|trecut)\b|"
            r"\b(?:came in|was here|were here|had (?:a|her|his|the|their))\b",
            0.5,
        ),
    ),
    "get_available_slots": (
        _cue(
            "is a booking request",
            r"\b(?:vreau|vrea|doresc|as dori|as vrea|would like|want|please|te rog|va rog)\b"
            r".{0,20}\b(?:programeaz\w*|programati|book|schedule|rezerv\w*)\b",
            0.4,
        ),
    ),
    "get_workflow_status": (_cue("about consent", rf"\b{_CONSENT}", 0.5),),
    "trigger_workflow": (
        _cue("asks a status", r"\b(?:status\w*|finished|done)\b", 0.5),
        _negated(r"porn\w*|start\w*|lans\w*|run|trigger\w*"),
    ),
    "get_patient": (
        _cue(
            "asks to change",
            r"\b(?:actualiz\w*|modific\w*|schimb\w*|update\w*|change\w*|corect\w*|noteaza|"
            r"notati|adauga\w*|add)\b",
            0.3,
        ),
    ),
    "record_consent": (
        _cue("is a question", r"\?\s*$", 0.5),
        _cue(
            "asks whether",
            r"\b(?:check\w*|verific\w*|whether|oare|vezi daca|see if|find out|afla|"
            r"(?:know|stiu|stii|stiti|tell me|spune-mi|ask|intreaba)\s+(?:if|daca))\b",
            0.5,
        ),
    ),
}


@dataclass(frozen=True)
class Combo:
    """Evidence from values found together, optionally with words: "delete" + an apt id."""

    label: str
    kinds: tuple[str, ...]
    weight: float
    pattern: re.Pattern[str] | None = None


def _combo(label: str, kinds: tuple[str, ...], weight: float, pattern: str | None = None) -> Combo:
    return Combo(label, kinds, weight, re.compile(pattern) if pattern else None)


# Penalties for every function.
GENERAL_PENALTIES: tuple[Cue, ...] = (
    _cue(
        "asks what a word means",
        r"^(?!.*#)\W*(?:ce (?:e|este|inseamna|sunt|reprezinta)|what (?:is|are|does)|what's|"
        r"explain)\s+(?:un |o |a |an |the )?[\w-]+(?:\s+[\w-]+)?(?:\s+mean)?[\s?!.]*$",
        0.6,
    ),
)

# Value-based cues: a found value of this kind counts as evidence for a function.
ENTITY_WEIGHTS: dict[str, dict[FunctionName, float]] = {
    "appointment": {"cancel_appointment": 0.35},
    "task": {"get_workflow_status": 0.45},
    "workflow_name": {"trigger_workflow": 0.5},
    "quote": {"send_whatsapp": 0.35},
    "message": {"send_whatsapp": 0.35},
    "note": {"update_patient": 0.35},
    "template": {"send_whatsapp": 0.25},
    "consent_type": {"check_consent": 0.2, "record_consent": 0.2},
    "group_by": {"get_lead_analytics": 0.25},
    "service": {"schedule_appointment": 0.15, "get_available_slots": 0.1},
}
# Values found together (and, when a pattern is given, with these words).
COMBOS: dict[FunctionName, tuple[Combo, ...]] = {
    "cancel_appointment": (
        _combo("removes an appointment", ("appointment",), 0.6, rf"\b(?:{_DELETE}|renunt\w*)\b"),
    ),
    "get_workflow_status": (_combo("asks about a workflow id", ("task", "question"), 0.3),),
    "schedule_appointment": (
        _combo("patient, treatment and day", ("patient", "service", "future_day"), 0.4),
        _combo("treatment and day", ("service", "future_day"), 0.2),
    ),
    "check_consent": (_combo("asks about a consent", ("consent_type", "question"), 0.25),),
    "record_consent": (
        _combo("a consent answer", ("consent_type", "consent_status", "statement"), 0.25),
    ),
}
# Penalty when a value of this kind is present: you don't trigger a workflow by its id.
ENTITY_PENALTIES: dict[str, dict[FunctionName, float]] = {
    "task": {"trigger_workflow": 0.5, "update_patient": 0.6},
    # "start the booking agent for pat-2 to book a cleaning": the workflow does the booking.
    "workflow_name": {"schedule_appointment": 0.5},
}
