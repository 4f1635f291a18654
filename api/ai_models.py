"""Wire models of ``POST /ai/execute``: one request discriminated on ``type``.

``function_call`` runs calls (concurrently), ``natural`` interprets a sentence
(and runs it unless ``execute`` is false), ``workflow`` runs a DAG of steps durably.
Call arguments stay plain objects here: each function's own model validates them,
so a bad call fails alone with an error naming its fields.

``StepDecisionRequest`` / ``StepDecisionResponse``: the body and answer of
``POST /ai/workflows/{workflowId}/steps/{stepId}/approve`` (and ``.../reject``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

STEP_ID_PATTERN = r"^[A-Za-z0-9_\-]+$"


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Call(_Wire):
    function: str = Field(min_length=1, max_length=100, description="A gateway function name.")
    arguments: dict[str, Any] = Field(default_factory=dict)
    call_id: str | None = Field(
        default=None, max_length=100, description="Echoed in the result; default c1, c2 ..."
    )


class FunctionCallRequest(_Wire):
    type: Literal["function_call"]
    calls: list[Call] = Field(min_length=1)


class NaturalContext(_Wire):
    patient_id: str | None = None
    phone: str | None = None
    language: Literal["ro", "en", "de"] | None = None


class NaturalRequest(_Wire):
    type: Literal["natural"]
    query: str = Field(min_length=1, max_length=2000)
    context: NaturalContext | None = None
    execute: bool = Field(default=True, description="False: interpret only, run nothing.")


class Step(_Wire):
    step_id: str = Field(min_length=1, max_length=64, pattern=STEP_ID_PATTERN)
    function: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description='Values may be {"$ref": "steps.<stepId>.result.<path>"} of an ancestor step.',
    )
    depends_on: list[str] = Field(default_factory=list)


class WorkflowRequest(_Wire):
    type: Literal["workflow"]
    steps: list[Step] = Field(min_length=1)
    require_approval: bool = Field(
        default=False,
        description=(
            "Outbound and destructive steps wait for approval: POST"
            " /ai/workflows/{workflowId}/steps/{stepId}/approve (or .../reject)."
        ),
    )


ExecuteRequest = Annotated[
    FunctionCallRequest | NaturalRequest | WorkflowRequest, Field(discriminator="type")
]
EXECUTE_REQUEST = TypeAdapter(ExecuteRequest)
"""Parses a raw ``/ai/execute`` body (JSON bytes) into one of the three requests."""


class CallError(_Wire):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class CallResult(_Wire):
    call_id: str
    function: str
    arguments: dict[str, Any]
    executed: bool = Field(description="False when the call was only interpreted or held back.")
    success: bool
    result: Any = None
    error: CallError | None = None
    execution_time_ms: float = 0.0
    position: int | None = Field(
        default=None, description="Global position of the events this call wrote."
    )


class Intent(_Wire):
    functions: list[str]
    confidence: float
    evidence: list[str]
    source: Literal["rules", "claude"] = "rules"
    language: str | None = None


class PlanStepView(_Wire):
    step_id: str
    function: str
    arguments: dict[str, Any]
    depends_on: list[str]
    side_effect: str
    status: str = "pending"


class Plan(_Wire):
    steps: list[PlanStepView]


class ExecuteResponse(_Wire):
    success: bool
    request_id: str
    type: Literal["function_call", "natural", "workflow"]
    results: list[CallResult]
    total_execution_time_ms: float
    trace_id: str
    position: int | None = Field(
        default=None, description="Pass as X-Min-Position to read at least these writes."
    )
    intent: Intent | None = None
    workflow_id: str | None = None
    plan: Plan | None = None
    error: CallError | None = Field(
        default=None, description="A request-level outcome, e.g. NO_INTENT_DETECTED."
    )


MAX_DECISION_REASON = 500


class StepDecisionRequest(_Wire):
    """Why a person approved or rejected a held step (kept in the workflow, not the audit)."""

    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DECISION_REASON,
        description="Why; a rejected step's error says it. No personal data, please.",
    )


class StepDecisionResponse(_Wire):
    """A plan step's state once the decision took effect (the step finished)."""

    workflow_id: str
    step_id: str
    function: str
    decision: Literal["approved", "rejected"]
    status: Literal["pending", "waiting_approval", "running", "completed", "failed", "skipped"] = (
        Field(description="completed or failed once approved; skipped once rejected.")
    )
    result: Any = None
    error: CallError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request_id: str
    trace_id: str
