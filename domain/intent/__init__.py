"""Deterministic intent detection for the gateway's natural-language requests."""

from domain.intent.detector import detect_intents, detect_language
from domain.intent.models import (
    PRIORITY,
    Candidate,
    DetectedCall,
    FunctionName,
    IntentContext,
    IntentResult,
)

__all__ = [
    "PRIORITY",
    "Candidate",
    "DetectedCall",
    "FunctionName",
    "IntentContext",
    "IntentResult",
    "detect_intents",
    "detect_language",
]
