"""Admin GDPR routes: erase a patient (Art. 17) and export what is held (Art. 15).

``POST /admin/patients/{patientId}/erase`` (body ``{"reason": "..."}``, optional) and
``GET /admin/patients/{patientId}/export`` need an API key with the ``admin`` scope;
the key's clinic is the only clinic they act on. Both decisions, allowed or denied,
are written to the audit log before anything runs (a failed audit write runs
nothing). Errors are problem details (``api.errors``).

Wiring (``create_app``'s lifespan): ``app.state.gdpr`` = ``adapters.gdpr.GdprServices``,
``app.state.authenticator`` (``api.auth``), ``app.state.audit`` = an audit sink
(``adapters.audit.AuditLog``; optional), then ``app.include_router(create_gdpr_router())``.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.audit import AuditEntry, Decision
from adapters.gdpr import GdprServices, erase_patient, export_patient
from api.auth import Principal, PrincipalDep
from api.errors import PROBLEM_JSON
from api.gateway import RequestInfo
from domain.errors import ExecutionError

log = logging.getLogger(__name__)

JSON = "application/json"
SCOPE = "admin"
_PROBLEM = {"content": {PROBLEM_JSON: {"schema": {"type": "object"}}}}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key", **_PROBLEM},
    403: {"description": "The key lacks the admin scope", **_PROBLEM},
    404: {"description": "No such patient in the key's clinic", **_PROBLEM},
}
PatientId = Annotated[str, Path(alias="patientId", min_length=1, max_length=200)]


class AuditSink(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...


class EraseRequest(BaseModel):
    """Why the person is erased (kept in the erasure record; no personal data, please)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


def _gdpr(request: Request) -> GdprServices:
    services: GdprServices = request.app.state.gdpr
    return services


GdprDep = Annotated[GdprServices, Depends(_gdpr)]


async def _authorise(request: Request, principal: Principal, function: str) -> None:
    """Audit the decision, then refuse a key without the admin scope."""
    allowed = SCOPE in principal.scopes
    decision: Decision = "allowed" if allowed else "denied"
    await _audit(request, principal, function, decision, None if allowed else "missing scope")
    principal.require(SCOPE)


async def _audit(
    request: Request, principal: Principal, function: str, decision: Decision, reason: str | None
) -> None:
    sink: AuditSink | None = getattr(request.app.state, "audit", None)
    if sink is None:
        return
    info = RequestInfo.new(surface="http")
    entry = AuditEntry(
        clinic_id=principal.clinic_id,
        actor=principal.actor,
        key_id=principal.key_id,
        function=function,
        decision=decision,
        reason=reason,
        request_id=info.request_id,
        trace_id=info.trace_id,
    )
    try:
        await sink.record(entry)
    except Exception as exc:
        log.exception("audit write failed; refusing %s", function)
        raise ExecutionError("the audit log is unavailable; nothing was run") from exc


def _json(body: Any, *, filename: str | None = None) -> Response:
    headers = {"Cache-Control": "no-store"}  # personal data: never kept by a cache
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(encoded, media_type=JSON, headers=headers)


def create_gdpr_router() -> APIRouter:
    """The admin GDPR routes (dependencies from ``request.app.state``, module docstring)."""
    router = APIRouter(prefix="/admin/patients", tags=["gdpr"], responses=PROBLEMS)

    @router.post("/{patientId}/erase", summary="Erase a patient (GDPR Art. 17)")
    async def erase(
        request: Request,
        patient_id: PatientId,
        principal: PrincipalDep,
        services: GdprDep,
        body: Annotated[EraseRequest | None, Body()] = None,
    ) -> Response:
        """Destroy the patient's keys and record the erasure; facts and statistics stay."""
        await _authorise(request, principal, "admin.erase_patient")
        report = await erase_patient(
            services,
            principal.clinic_id,
            patient_id,
            actor=principal.actor,
            reason=body.reason if body else None,
        )
        return _json(report)

    @router.get("/{patientId}/export", summary="Export what is held on a patient (Art. 15)")
    async def export(
        request: Request, patient_id: PatientId, principal: PrincipalDep, services: GdprDep
    ) -> Response:
        """Profile, decrypted events, consents with proof, messages, appointments, leads."""
        await _authorise(request, principal, "admin.export_patient")
        body = await export_patient(services, principal.clinic_id, patient_id)
        return _json(body, filename=f"patient-{patient_id}.json")

    return router
