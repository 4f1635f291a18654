"""API-key management of a clinic, for its ``admin`` keys: ``/ai/keys``.

An admin key lists, creates and revokes keys of ITS OWN clinic (the clinic comes from
the key, never from the request). A new key's secret is answered once. Revocation
is effective at once (``adapters.api_keys``). Reads ``app.state.api_keys``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from adapters.api_keys import ApiKey, ApiKeyStore
from api.auth import PrincipalDep
from domain.errors import NotFound
from domain.functions.registry import SCOPES, Scope


class NewKey(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: str = Field(default="", max_length=100)
    scopes: list[Scope] = Field(min_length=1, description=f"Any of {', '.join(SCOPES)}.")
    rate_per_s: float | None = Field(
        default=None,
        ge=0.01,
        le=100_000,
        description="Sustained requests per second (0.01 = one per 100 s); default: settings.",
    )
    burst: int | None = Field(default=None, gt=0, le=1_000_000)


def _view(key: ApiKey) -> dict[str, Any]:
    return {
        "keyId": key.key_id,
        "prefix": key.prefix,
        "clinicId": key.clinic_id,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "ratePerS": key.rate_per_s,
        "burst": key.burst,
        "createdAt": key.created_at.isoformat(),
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _store(request: Request) -> ApiKeyStore:
    store: ApiKeyStore = request.app.state.api_keys
    return store


def create_keys_router() -> APIRouter:
    """``GET/POST /ai/keys``, ``DELETE /ai/keys/{key_id}`` (scope ``admin``)."""
    router = APIRouter(prefix="/ai/keys", tags=["api-keys"])

    @router.get("", summary="The clinic's API keys")
    async def list_keys(
        request: Request, principal: PrincipalDep, include_revoked: bool = False
    ) -> dict[str, Any]:
        principal.require("admin")
        keys = await _store(request).list(principal.clinic_id, include_revoked=include_revoked)
        return {"keys": [_view(k) for k in keys]}

    @router.post("", status_code=201, summary="Create a key (its secret is shown once)")
    async def create_key(
        request: Request, principal: PrincipalDep, body: Annotated[NewKey, Body()]
    ) -> dict[str, Any]:
        principal.require("admin")
        record, plaintext = await _store(request).create(
            principal.clinic_id,
            body.scopes,
            body.name,
            rate_per_s=body.rate_per_s,
            burst=body.burst,
        )
        return {**_view(record), "key": plaintext}

    @router.delete("/{key_id}", status_code=204, summary="Revoke a key, at once")
    async def revoke_key(request: Request, principal: PrincipalDep, key_id: str) -> Response:
        principal.require("admin")
        if not await _store(request).revoke(key_id, clinic_id=principal.clinic_id):
            raise NotFound(f"no active key {key_id!r} in this clinic", keyId=key_id)
        return Response(status_code=204)

    return router
