"""Dental services the clinic books, their default durations and how people name them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.text import within_one_edit


class ServiceType(StrEnum):
    """A bookable service; values are the gateway's ``serviceType`` strings."""

    CONSULTATION = "consultation"
    CHECKUP = "checkup"
    CLEANING = "cleaning"
    FILLING = "filling"
    ROOT_CANAL = "root_canal"
    EXTRACTION = "extraction"
    IMPLANT = "implant"
    ALL_ON_X = "all_on_x"
    CROWN = "crown"
    VENEERS = "veneers"
    WHITENING = "whitening"
    ORTHODONTICS = "orthodontics"


_DURATIONS: dict[ServiceType, int] = {ServiceType.IMPLANT: 90, ServiceType.CLEANING: 30}
_OTHER_DURATION = 60


def default_duration(service: ServiceType | str) -> int:
    """Minutes booked when no duration is given: implant 90, cleaning 30, others 60."""
    return _DURATIONS.get(ServiceType(service), _OTHER_DURATION)


# Patterns run on folded text (see domain.text.fold). Order inside a tuple is irrelevant.
_PATTERNS: dict[ServiceType, tuple[str, ...]] = {
    ServiceType.ALL_ON_X: (
        r"\ball[\s-]*on[\s-]*(?:4|6|x|four|six|patru|sase)\b",
        r"\ballon[46x]\b",
    ),
    ServiceType.IMPLANT: (r"\bimplant\w*",),
    ServiceType.VENEERS: (r"\bfatet\w*", r"\bveneer\w*"),
    ServiceType.WHITENING: (
        r"\balbir\w*",
        r"\balb(?:esc|este|iti|im)\b",
        r"\bwhiten\w*",
        r"\bbleach\w*",
    ),
    ServiceType.EXTRACTION: (
        r"\bextracti\w*",
        r"\bextrag\w*",
        r"\bextract\w*",
        r"\bscoate\w*\s+(?:un\s+|o\s+|)(?:dinte|dintele|masea|maseaua|molar\w*|masele)\b",
        r"\bpull\w*\s+(?:out\s+)?(?:a\s+|my\s+|the\s+|his\s+|her\s+)?tooth\b",
        r"\btooth\s+removal\b",
    ),
    ServiceType.CLEANING: (
        r"\bcurata\w*",
        r"\bdetartraj\w*",
        r"\bigienizar\w*",
        r"\bprofilaxi\w*",
        r"\bcleaning\b",
        r"\bscaling\b",
        r"\bhygiene\b",
    ),
    ServiceType.CONSULTATION: (r"\bconsult\w*",),
    ServiceType.CHECKUP: (r"\bcontrol\w*", r"\bcheck[\s-]?ups?\b"),
    ServiceType.FILLING: (r"\bplomb\w*", r"\bobturati\w*", r"\bfilling\w*", r"\bcari[ia]\w*"),
    ServiceType.ORTHODONTICS: (
        r"\baparat\w*\s+dentar\w*",
        r"\bortodon\w*",
        r"\borthodont\w*",
        r"\bbraces\b",
        r"\binvisalign\b",
        r"\bgutier\w*",
    ),
    ServiceType.ROOT_CANAL: (
        r"\btratament\w*\s+(?:de\s+|pe\s+|la\s+)?canal\w*",
        r"\bcanal\w*\s+radicular\w*",
        r"\bdevitaliz\w*",
        r"\bendodont\w*",
        r"\broot[\s-]+canal\w*",
    ),
    ServiceType.CROWN: (r"\bcoroan\w*", r"\bcrowns?\b"),
}
_COMPILED = {service: [re.compile(p) for p in ps] for service, ps in _PATTERNS.items()}

# Whole words recognised with one typo ("curatre", "implnt", "extractei").
_TYPO_WORDS: dict[str, ServiceType] = {
    "curatare": ServiceType.CLEANING,
    "detartraj": ServiceType.CLEANING,
    "igienizare": ServiceType.CLEANING,
    "cleaning": ServiceType.CLEANING,
    "implant": ServiceType.IMPLANT,
    "implanturi": ServiceType.IMPLANT,
    "fatete": ServiceType.VENEERS,
    "veneers": ServiceType.VENEERS,
    "albire": ServiceType.WHITENING,
    "whitening": ServiceType.WHITENING,
    "extractie": ServiceType.EXTRACTION,
    "extraction": ServiceType.EXTRACTION,
    "consultatie": ServiceType.CONSULTATION,
    "consultation": ServiceType.CONSULTATION,
    "plomba": ServiceType.FILLING,
    "filling": ServiceType.FILLING,
}
_TOKEN = re.compile(r"[a-z]{5,}")


@dataclass(frozen=True)
class ServiceMatch:
    """One mention of a service in folded text, with its offsets."""

    service: ServiceType
    start: int
    end: int
    text: str


def find_services(folded: str) -> list[ServiceMatch]:
    """Every service mentioned in ``folded`` text, in order of appearance.

    A mention inside an All-on-X phrase ("all on 4 pe implanturi") counts only as
    All-on-X. Words one typo away from a known service word also count.
    """
    matches = [
        ServiceMatch(service, m.start(), m.end(), m.group(0))
        for service, patterns in _COMPILED.items()
        for pattern in patterns
        for m in pattern.finditer(folded)
    ]
    matches.extend(_typo_matches(folded, matches))
    if any(m.service is ServiceType.ALL_ON_X for m in matches):
        matches = [m for m in matches if m.service is not ServiceType.IMPLANT]
    return sorted(_dedupe(matches), key=lambda m: (m.start, list(ServiceType).index(m.service)))


def _typo_matches(folded: str, exact: list[ServiceMatch]) -> list[ServiceMatch]:
    covered = {(m.start, m.end) for m in exact}
    found = []
    for token in _TOKEN.finditer(folded):
        if any(s <= token.start() < e for s, e in covered):
            continue
        for word, service in _TYPO_WORDS.items():
            if within_one_edit(token.group(0), word):
                found.append(ServiceMatch(service, token.start(), token.end(), token.group(0)))
                break
    return found


def _dedupe(matches: list[ServiceMatch]) -> list[ServiceMatch]:
    seen: set[tuple[ServiceType, int]] = set()
    unique = []
    for match in matches:
        if (match.service, match.start) not in seen:
            seen.add((match.service, match.start))
            unique.append(match)
    return unique
