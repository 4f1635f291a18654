"""The words that point to each gateway function, with how strongly they do.

A cue is a regular expression over folded, masked text (see ``spans``) and a
weight in (0, 1): the probability-like strength of that evidence alone. A
function's keyword score is the noisy-OR of its matched cues,
``1 - Π(1 - w)``, then multiplied by ``1 - w`` for each matched penalty (words
that point *away* from it). Each word counts once per function: a weaker cue
whose match overlaps a stronger one adds nothing. A piece of a sentence whose
word cues alone reach ``TRIGGER_WEIGHT`` may start a new request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.intent.models import FunctionName

TRIGGER_WEIGHT = 0.45


@dataclass(frozen=True)
class Cue:
    """One piece of keyword evidence for (or, as a penalty, against) a function."""

    label: str
    pattern: re.Pattern[str]
    weight: float


def _cue(label: str, pattern: str, weight: float) -> Cue:
    return Cue(label, re.compile(pattern), weight)


_PATIENT = r"\b(?:pacient\w*|patient\w*)"
_FIND = (
    r"(?:cauta\w*|cauti|gase\w*|gasi\w*|find|look\w*\s+up|lookup|search|deschide\w*|open|"
    r"arata\w*|show(?:\s+me)?|afiseaza|scoate\w*|pull\w*\s+up|bring\w*\s+up)"
)
_CONSENT = r"(?:acord\w*|consimt\w*|consent\w*|gdpr)"
_LEAD_ONE = r"\blead(?:ul|-ul|ului|-ului)?\b(?![\s-]scoring)"
_LEAD_MANY = r"\blead(?:uri|-uri|urile|-urile|urilor|-urilor|s)\b"
_STATUS_GRANTED = (
    r"\b(?:si-a dat|si a dat|isi da|a dat|a fost de acord|este de acord|e de acord|"
    r"sunt de acord|a acceptat|accepta|a raspuns da|a zis da|a spus da|agreed|granted|"
    r"gave (?:his |her |their )?consent|opted in|consented)\b"
)
_STATUS_WITHDRAWN = (
    r"\b(?:si-a retras|si a retras|a retras|retrage\w*|retras\w*|revoc\w*|withdr[ae]w\w*|"
    r"revoke\w*|opted out|opts? out|unsubscrib\w*|dezabon\w*|stop)\b"
)
_STATUS_DENIED = (
    r"\b(?:a refuzat|refuz\w*|nu (?:e|este|a fost|mai e|mai este) de acord|declined|"
    r"refused|denied|said no|a raspuns nu|a zis nu|nu (?:mai )?vrea|nu doreste|"
    r"does ?n[o']t want)\b"
)
STATUS_PATTERNS = {
    "denied": re.compile(_STATUS_DENIED),
    "withdrawn": re.compile(_STATUS_WITHDRAWN),
    "granted": re.compile(_STATUS_GRANTED),
}
_PERMISSION_QUESTION = (
    r"\b(?:avem voie|are voie|au voie|are dreptul|are we allowed|allowed to|is it ok to|"
    r"e ok sa|putem sa|putem trimite|"
    r"can we (?:send|message|contact|text))\b"
)

CUES: dict[FunctionName, tuple[Cue, ...]] = {
    "score_lead": (
        _cue(
            "score verb",
            r"\bscor(?:eaza|eza|ati|ez|ezi|eze|e|ul|ului)?\b|(?<!lead[\s-])\bscoring\b",
            0.6,
        ),
        _cue(
            "qualify verb",
            r"\b(?:calific\w*|qualify|evalu(?:eaza|eza|ati|ezi)|evaluate|rate|clasific\w*|"
            r"classify)\b",
            0.45,
        ),
        _cue("new lead", r"\b(?:lead nou|new lead)\b", 0.35),
        _cue("a lead", _LEAD_ONE, 0.35),
        _cue("how hot", r"\b(?:cat de (?:cald|fierbinte|bun)|how (?:hot|warm|good))\b", 0.4),
    ),
    "get_patient": (
        _cue(
            "find the patient",
            rf"\b{_FIND}\b.{{0,30}}?\b(?:pacient\w*|patient\w*|fis[ae]\w*|dosar\w*|record|"
            r"profil\w*)",
            0.7,
        ),
        _cue("find this value", rf"\b{_FIND}(?:-[lo]|-mi)?\b\s*(?:pe\s+)?#", 0.6),
        _cue(
            "what do we know",
            r"\b(?:what do we (?:know|have)|ce (?:stim|avem|date avem|informatii avem))\b"
            r".{0,15}\b(?:about|despre|on|pe)\b",
            0.6,
        ),
        _cue("patient file", r"\bfis(?:a|ei|ele)\b", 0.45),
        _cue(
            "patient details",
            r"\b(?:fisa|dosarul|detalii\w*|details|informatii\w*|info|datele|date de contact|"
            r"contact details|profile?|profilul)\b.{0,25}(?:\b(?:pacient\w*|patient\w*)|#)",
            0.6,
        ),
        _cue(
            "one of our patients",
            r"\b(?:one of our|among our|unul dintre|una dintre)\s+(?:patients|pacient\w*)",
            0.6,
        ),
        _cue(
            "who is the patient", rf"\b(?:cine (?:e|este)|who is|who's)\b.{{0,15}}{_PATIENT}", 0.7
        ),
        _cue(
            "do we have the patient",
            rf"\b(?:avem|exista|is there|do we have)\b.{{0,40}}{_PATIENT}",
            0.45,
        ),
        _cue(
            "in the database",
            r"\b(?:in baza de date|in the database|in our (?:system|records)|in sistem|"
            r"in evidenta)\b",
            0.5,
        ),
        _cue("find verb", r"\b(?:cauta|gaseste|find|look\w*\s+up|search)\b", 0.35),
        _cue("patient", _PATIENT, 0.2),
    ),
    "update_patient": (
        _cue(
            "update verb",
            r"\b(?:actualiz\w*|modific\w*|schimb\w*|corect\w*|update\w*|change\w*|edit\w*|"
            r"seteaza|set|trece(?:-i|ti)?|completeaza)\b",
            0.45,
        ),
        _cue(
            "update the patient",
            r"\b(?:actualiz\w*|modific\w*|update\w*|edit\w*)\b\s+(?:the\s+|a\s+)?"
            r"(?:pacient\w*|patient\w*|fisa\w*|datele|profil\w*|#)",
            0.65,
        ),
        _cue(
            "patient field",
            r"\b(?:e-?mail\w*|telefon\w*|phone(?: number)?|nume|numele|prenume\w*|first name|"
            r"last name|surname|data nasterii|date of birth|birthday|dob|not[ae]|notita\w*|"
            r"eticheta\w*|tag\w*)\b",
            0.3,
        ),
        _cue(
            "add a note or tag",
            r"\b(?:adauga\w*|add|pune\w*|noteaza|notati)\b.{0,25}\b(?:nota|notita|note|"
            r"eticheta|tag\w*|label)\b",
            0.7,
        ),
        _cue("note verb", r"\b(?:noteaza|notati)\b", 0.5),
    ),
    "schedule_appointment": (
        _cue("schedule verb", r"\bprogram(?:eaza|eza|ez|ezi|eze|ati|am|a)\b", 0.7),
        _cue(
            "make an appointment",
            r"\b(?:fa|faceti|fac|face|vreau|vrea|doresc|dori|need|want|like|make|set up|get)\b"
            r".{0,40}\b(?:programar\w*|appointment)",
            0.65,
        ),
        _cue(
            "come in for",
            r"\b(?:vreau|vrea|doresc|dori|putea|pot|want|like)\s+(?:sa\s+)?(?:vin|veni|come|"
            r"ajung)\b",
            0.6,
        ),
        _cue("put down for", r"\bput\b.{0,25}\bdown\s+for\b|\bfit\b.{0,25}\bin\b", 0.6),
        _cue(
            "book verb", r"\b(?:book|booked|schedul\w*|reserv\w*|rezerv\w*)\b(?![\s-]+agent)", 0.65
        ),
        _cue(
            "put in the agenda",
            r"\bpune\w*(?:-[lo])?\b.{0,30}\b(?:in|pe)\s+(?:agenda|program|calendar)\b",
            0.6,
        ),
        _cue(
            "starts with appointment",
            r"^\W*(?:o\s+|new\s+|an?\s+)?(?:programare|appointment)\b",
            0.6,
        ),
        _cue("appointment", r"\b(?:programar\w*|appointment\w*)\b", 0.3),
    ),
    "get_available_slots": (
        _cue("slot", r"\bslot\w*", 0.65),
        _cue(
            "free places",
            r"\b(?:loc|locuri|ore|ora|orele|intervale|interval\w*|spots?|times?)\s+"
            r"(?:libere?|liber|disponibil\w*|free|available|open)\b",
            0.7,
        ),
        _cue(
            "free slots",
            r"\b(?:free|available|open)\s+(?:slots?|spots?|times?|appointments?|hours?)\b|"
            r"\b(?:slots?|spots?|times?|appointments?|hours?)\s+(?:free|available|open)\b",
            0.7,
        ),
        _cue(
            "has something free",
            r"\b(?:are|ai|aveti|avem|has|have)\b(?:\s+\w+){0,2}\s+(?:liber\w*|free|"
            r"disponibil\w*)",
            0.6,
        ),
        _cue(
            "are there places",
            r"\b(?:exista|mai sunt|sunt|is there|are there)\b.{0,15}\b(?:locuri|loc|slot\w*|"
            r"spots?|room)\b",
            0.6,
        ),
        _cue("availability", r"\b(?:disponibil\w*|availab\w*)", 0.55),
        _cue("openings", r"\bopenings?\b", 0.55),
        _cue(
            "when free", r"\b(?:cand|when)\b.{0,20}\b(?:liber\w*|free|available|disponibil\w*)", 0.6
        ),
        _cue(
            "have a place",
            r"\b(?:aveti|avem|ai|have you got|do you have|got)\s+(?:un\s+|vreun\s+|any\s+)?"
            r"(?:loc|locuri|spots?|room)\b",
            0.55,
        ),
        _cue(
            "which places",
            r"\b(?:ce|what|which|care)\s+(?:locuri|ore|sloturi|intervale|slots?|times)\b",
            0.6,
        ),
        _cue("free", r"\b(?:liber[ae]?|free)\b", 0.3),
    ),
    "cancel_appointment": (
        _cue("cancel verb", r"\banul(?:eaza|eza|ati|ez|ezi|eze|a|are|area|at)\b", 0.75),
        _cue("cancel", r"\b(?:cancel\w*|call\w* off)\b", 0.75),
        _cue(
            "scrap it", r"\b(?:scrap|drop|kill)\b.{0,15}(?:\b(?:appointment|programar\w*)|#)", 0.7
        ),
        _cue(
            "delete the appointment",
            r"\b(?:sterge\w*|scoate\w*|elimina\w*|delete|remove|take\s+off)\b.{0,25}"
            r"\b(?:programar\w*|appointment\w*)",
            0.7,
        ),
        _cue("give up the appointment", r"\brenunt\w*\b.{0,15}\bprogramar\w*", 0.7),
        _cue("cannot come", r"\bnu mai (?:poate|pot|vine|vin|ajunge)\b", 0.2),
    ),
    "send_whatsapp": (
        _cue("send verb", r"\b(?:trimit\w*|send\w*)\b", 0.45),
        _cue("write verb", r"\bscri(?:e|eti|ei)\b", 0.4),
        _cue("message", r"\b(?:mesaj\w*|message\w*|sms|text\w*)\b", 0.35),
        _cue("on WhatsApp", r"(?<!de )\b(?:pe|on|via|prin|through|over)\s+whats ?app\b", 0.35),
        _cue(
            "WhatsApp to a number",
            r"\bwhats ?app\b[\s#]*:|\bwhats ?app\s+(?:to|catre|lui|la)\s+#",
            0.5,
        ),
        _cue("WhatsApp as a verb", r"^\W*whats ?app\s+(?:the|him|her|them|pe|lui|la|#)", 0.5),
        _cue(
            "drop a line",
            r"\bdrop\s+(?:\w+\s+)?(?:a\s+)?(?:line|message|note|text|whats ?app)\b",
            0.5,
        ),
        _cue("WhatsApp", r"\bwhats ?app\b", 0.2),
        _cue("tell", r"\b(?:spune-i|anunta-l|anunta-o|tell|inform\w*)\b", 0.25),
    ),
    "record_consent": (
        _cue(
            "record verb",
            r"\b(?:inregistr\w*|salveaza|salvati|noteaza|marcheaza|marcati|"
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
            r"\b(?:verific\w*|check\w*|confirm\w*|arata\w*|show\w*|list\w*|situatia|status)\b"
            rf".{{0,40}}\b{_CONSENT}",
            0.65,
        ),
        _cue(
            "has consent",
            rf"\b(?:are|has|have|do|does|did|a dat|si-a dat)\b.{{0,40}}\b(?:{_CONSENT}|"
            r"opted in|opt(?:ed)? out|agreed|de acord)",
            0.45,
        ),
        _cue("are we allowed", _PERMISSION_QUESTION, 0.6),
        _cue(
            "which consents",
            r"\b(?:ce|what|which|care)\b.{0,15}\b(?:acorduri\w*|consimtamint\w*|consents)\b",
            0.6,
        ),
        _cue("still valid", r"\b(?:valabil\w*|valid\w*|in regula|expir\w*)\b", 0.25),
        _cue("consent", rf"\b{_CONSENT}", 0.3),
        _cue("is a question", r"\?\s*$", 0.3),
    ),
    "get_lead_analytics": (
        _cue(
            "how many leads",
            r"\b(?:cate|cati|how many|numarul de|number of|total\w*)\b.{0,30}\blead",
            0.7,
        ),
        _cue(
            "statistics",
            r"\b(?:statistic\w*|stats|analytics|analiz\w*|raport\w*|report\w*|breakdown|"
            r"conversi\w*|conversion\w*|metrics|metrici|kpi|lead generation|"
            r"break\w*\s+(?:it\s+|them\s+)?down)\b",
            0.5,
        ),
        _cue("lead numbers", r"\blead\w*\s+(?:numbers|count|volume|totals?|figures)\b", 0.6),
        _cue(
            "how many new patients",
            r"\b(?:cati|cate|how many)\b.{0,20}\b(?:pacienti noi|new patients|clienti noi|"
            r"new clients|contacte noi)",
            0.6,
        ),
        _cue("leads", _LEAD_MANY, 0.35),
        _cue("we got", r"\b(?:am avut|au venit|am primit|did we get|came in|we got)\b", 0.2),
    ),
    "trigger_workflow": (
        _cue(
            "start verb",
            r"\b(?:porn\w*|lans\w*|declans\w*|rul(?:eaza|ati|ezi|a)|start\w*|trigger\w*|run|"
            r"launch\w*|kick\w* off|initiaz\w*|activ(?:eaza|ati))\b",
            0.45,
        ),
        _cue(
            "workflow", r"\b(?:workflow\w*|flux\w*|secvent\w*|sequence|journey|parcurs\w*)\b", 0.35
        ),
        _cue(
            "put into a sequence",
            r"\bpun\w*\b.{0,30}\b(?:secvent\w*|sequence|nurtur\w*|flux\w*)",
            0.6,
        ),
    ),
    "get_workflow_status": (
        _cue("status", r"\b(?:status\w*|starea|stare|stadiu\w*|progres\w*|progress)\b", 0.55),
        _cue(
            "is it done",
            r"(?:\bunde a ajuns|\bcum merge|\bs-a terminat|\bs-a finalizat|\ba terminat|"
            r"\bs-a incheiat|\bdone\b|\bfinished\b|\bcompleted?\b|\bmai ruleaza\b|"
            r"\bstill running\b|\bis (?:it )?running\b|\bs-a oprit\b|\bstopped\b|\bfailed\b|"
            r"\ba esuat\b|\beroare\b|\berror\b|\ba ajuns\b|\bce pas\b|\bwhich step\b|"
            r"\bcurrent step\b)",
            0.45,
        ),
        _cue(
            "any news",
            r"\b(?:any (?:update|news)|vreo noutate|ce (?:mai )?face|"
            r"what'?s (?:going on|happening) with|ce s-a intamplat cu)\b",
            0.45,
        ),
        _cue("workflow", r"\b(?:workflow\w*|flux\w*|task\w*)\b", 0.2),
    ),
}

PENALTIES: dict[FunctionName, tuple[Cue, ...]] = {
    "send_whatsapp": (
        _cue("asks permission", _PERMISSION_QUESTION, 0.6),
        _cue(
            "reports a consent answer",
            rf"(?:{_STATUS_GRANTED}|{_STATUS_WITHDRAWN}|{_STATUS_DENIED})",
            0.4,
        ),
    ),
    "record_consent": (_cue("is a question", r"\?\s*$", 0.5),),
    "schedule_appointment": (
        _cue("asks what is free", r"\b(?:availab\w*|disponibil\w*|liber[ae]?|free)\b", 0.3),
    ),
    "get_workflow_status": (_cue("about consent", rf"\b{_CONSENT}", 0.5),),
    "trigger_workflow": (_cue("asks a status", r"\b(?:status\w*|finished|done)\b", 0.5),),
}

# Value-based cues: a found value of this kind counts as evidence for a function.
ENTITY_WEIGHTS: dict[str, dict[FunctionName, float]] = {
    "appointment": {"cancel_appointment": 0.3},
    "task": {"get_workflow_status": 0.4},
    "workflow_name": {"trigger_workflow": 0.5},
    "quote": {"send_whatsapp": 0.35},
    "message": {"send_whatsapp": 0.35},
    "template": {"send_whatsapp": 0.25},
    "consent_type": {"check_consent": 0.2, "record_consent": 0.2},
    "group_by": {"get_lead_analytics": 0.25},
    "service": {"schedule_appointment": 0.15, "get_available_slots": 0.1},
}
# Penalty when a value of this kind is present: you don't trigger a workflow by its id.
ENTITY_PENALTIES: dict[str, dict[FunctionName, float]] = {
    "task": {"trigger_workflow": 0.5, "update_patient": 0.6},
}

# Whole words recognised with one typo (see domain.text.within_one_edit).
TYPO_WORDS: dict[FunctionName, tuple[str, ...]] = {
    "schedule_appointment": ("programeaza", "programati", "schedule", "appointment"),
    "cancel_appointment": ("anuleaza", "anulati", "cancel"),
    "send_whatsapp": ("trimite", "whatsapp", "message"),
    "score_lead": ("scoreaza",),
    "get_workflow_status": ("status", "statusul"),
    "get_available_slots": ("disponibil", "available"),
    "check_consent": ("verifica", "consimtamant", "consent"),
    "update_patient": ("actualizeaza", "update"),
}
TYPO_WEIGHT = 0.5
