"""What intent detection takes and returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

FunctionName = Literal[
    "score_lead",
    "get_patient",
    "update_patient",
    "schedule_appointment",
    "get_available_slots",
    "cancel_appointment",
    "send_whatsapp",
    "record_consent",
    "check_consent",
    "get_lead_analytics",
    "trigger_workflow",
    "get_workflow_status",
]

# Ties between equally confident functions go to the earlier name: the more
# specific, less destructive reading first (a status query before a trigger, a
# consent check before a consent record, a look-up before an update).
PRIORITY: tuple[FunctionName, ...] = (
    "get_workflow_status",
    "cancel_appointment",
    "check_consent",
    "record_consent",
    "get_available_slots",
    "schedule_appointment",
    "get_lead_analytics",
    "score_lead",
    "trigger_workflow",
    "get_patient",
    "update_patient",
    "send_whatsapp",
)

Language = Literal["ro", "en"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class IntentContext(_Model):
    """What the caller already knows: the patient in focus and the preferred language."""

    patient_id: str | None = None
    phone: str | None = None
    language: str | None = None


class DetectedCall(_Model):
    """One function call understood from the query.

    ``arguments`` use the gateway's camelCase names. ``missing`` lists required
    arguments that were not found; a one-of group is written ``"a|b"`` (give any
    one). ``evidence`` names every matched word and extracted value, so the
    ``confidence`` can be explained.
    """

    function: FunctionName
    arguments: dict[str, Any] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)


class Candidate(_Model):
    """A function the query might mean, with its confidence and evidence."""

    function: FunctionName
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)


class IntentResult(_Model):
    """The calls understood from a query, in execution order.

    ``confidence`` is the weakest call's confidence (a plan is as sure as its
    least certain step), or the best candidate's when no call passed the threshold.
    ``candidates`` are the best-scoring functions for the whole query (at most
    three), useful as suggestions when ``calls`` is empty.
    """

    calls: list[DetectedCall] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    language: Language
    candidates: list[Candidate] = Field(default_factory=list)

    @property
    def functions(self) -> list[str]:
        """The detected function names, in order."""
        return [call.function for call in self.calls]
