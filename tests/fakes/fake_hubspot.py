"""A fake HubSpot CRM v3 contacts API with an in-memory portal.

Routes: ``POST /crm/v3/objects/contacts/search``, ``POST /crm/v3/objects/contacts``,
``PATCH /crm/v3/objects/contacts/{id}``, ``GET /crm/v3/objects/contacts/{id}``.
Checks ``Authorization: Bearer <token>``; validates property names and types against
the portal's property definitions (unknown property → 400 PROPERTY_DOESNT_EXIST);
a second contact with an existing e-mail → 409 "Contact already exists. Existing ID";
errors in HubSpot's ``{status, message, correlationId, category}`` shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeServer, Scripted, json_response, parse_json

PropertyType = Literal["string", "number", "bool"]

STANDARD_PROPERTIES: dict[str, PropertyType] = {
    "email": "string",
    "firstname": "string",
    "lastname": "string",
    "phone": "string",
    "mobilephone": "string",
    "lifecyclestage": "string",
    "hs_lead_status": "string",
    "createdate": "string",
    "lastmodifieddate": "string",
    "hs_object_id": "number",
}
# The custom properties the clinic's portal was set up with for MedicalCor.
CLINIC_PROPERTIES: dict[str, PropertyType] = {
    "lead_status": "string",
    "lead_score": "number",
    "lead_source": "string",
    "procedure_interest": "string",
    **{
        f"consent_{t}": "bool"
        for t in (
            "data_processing",
            "marketing_whatsapp",
            "marketing_email",
            "marketing_sms",
            "appointment_reminders",
            "treatment_updates",
            "third_party_sharing",
        )
    },
    **{f"utm_{k}": "string" for k in ("source", "medium", "campaign", "content", "term")},
}
_Action = Callable[[Any, dict[str, Any]], Response]
_READ_ONLY = {"createdate", "lastmodifieddate", "hs_object_id"}
_OPERATORS = {"EQ", "NEQ", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}


class FakeHubSpot(FakeServer):
    """The fake portal. ``contacts`` holds the stored objects by id."""

    def __init__(self, token: str = "test-hubspot-token") -> None:
        super().__init__()
        self.token = token
        self.properties: dict[str, PropertyType] = {**STANDARD_PROPERTIES, **CLINIC_PROPERTIES}
        self.contacts: dict[str, dict[str, Any]] = {}
        self._next_id = 1001

    def build_app(self) -> Starlette:
        base = "/crm/v3/objects/contacts"
        return Starlette(
            routes=[
                Route(f"{base}/search", self._search, methods=["POST"]),
                Route(base, self._create, methods=["POST"]),
                Route(base + "/{contact_id}", self._update, methods=["PATCH"]),
                Route(base + "/{contact_id}", self._get, methods=["GET"]),
            ]
        )

    # --- seeding and scripting ---------------------------------------------------------

    def add_contact(self, properties: dict[str, str]) -> str:
        """Store a contact directly (as if created earlier in HubSpot); return its id."""
        with self._lock:
            return self._store(properties)["id"]

    def fail_next(
        self,
        status: int,
        *,
        route: str | None = None,
        retry_after: str | None = None,
        message: str | None = None,
        delay_s: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests (of ``route``: search, create, update, get)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.enqueue(
            Scripted(status, _failure_body(status, message), headers, delay_s, route), times
        )

    # --- handlers -----------------------------------------------------------------------

    async def _search(self, request: Request) -> Response:
        return await self._handle(request, "search", self._do_search)

    async def _create(self, request: Request) -> Response:
        return await self._handle(request, "create", self._do_create)

    async def _update(self, request: Request) -> Response:
        return await self._handle(request, "update", self._do_update)

    async def _get(self, request: Request) -> Response:
        return await self._handle(request, "get", self._do_get)

    async def _handle(self, request: Request, route: str, action: _Action) -> Response:
        recorded = await self.record(request, route)
        entry = await self.scripted(route)
        if entry is not None:
            return json_response(entry.status or 500, entry.body, entry.headers)
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return _problem(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                "INVALID_AUTHENTICATION",
            )
        body = parse_json(recorded) if recorded.body else {}
        if recorded.method != "GET" and not isinstance(body, dict):
            return _problem(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
        with self._lock:
            return action(body, request.path_params)

    def _do_search(self, body: dict[str, Any], _: dict[str, Any]) -> Response:
        groups = body.get("filterGroups", [])
        if not isinstance(groups, list) or len(groups) > 5:
            return _problem(
                400, "filterGroups must be a list of at most 5 groups", "VALIDATION_ERROR"
            )
        for group in groups:
            for flt in group.get("filters", []):
                if flt.get("operator") not in _OPERATORS or "propertyName" not in flt:
                    return _problem(400, f"Invalid filter: {json.dumps(flt)}", "VALIDATION_ERROR")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 < limit <= 200:
            return _problem(400, "limit must be between 1 and 200", "VALIDATION_ERROR")
        found = [c for c in self.contacts.values() if _matches(c, groups)]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id"}]
        found.sort(
            key=lambda c: _sort_key(c, sorts[0]), reverse=sorts[0].get("direction") == "DESCENDING"
        )
        wanted = body.get("properties") or ["email", "firstname", "lastname"]
        results = [_project(c, wanted) for c in found[:limit]]
        return json_response(200, {"total": len(found), "results": results})

    def _do_create(self, body: dict[str, Any], _: dict[str, Any]) -> Response:
        props = body.get("properties")
        problem = self._invalid_properties(props)
        if problem is not None:
            return problem
        assert isinstance(props, dict)
        email = props.get("email")
        duplicate = next(
            (c for c in self.contacts.values() if email and c["properties"].get("email") == email),
            None,
        )
        if duplicate is not None:
            return _problem(
                409, f"Contact already exists. Existing ID: {duplicate['id']}", "CONFLICT"
            )
        return json_response(201, _public(self._store(props)))

    def _do_update(self, body: dict[str, Any], params: dict[str, Any]) -> Response:
        contact = self.contacts.get(str(params["contact_id"]))
        if contact is None:
            return _problem(404, "resource not found", "OBJECT_NOT_FOUND")
        props = body.get("properties")
        problem = self._invalid_properties(props)
        if problem is not None:
            return problem
        assert isinstance(props, dict)
        contact["properties"].update(props)
        now = _now()
        contact["properties"]["lastmodifieddate"] = now
        contact["updatedAt"] = now
        return json_response(200, _public(contact))

    def _do_get(self, _: Any, params: dict[str, Any]) -> Response:
        contact = self.contacts.get(str(params["contact_id"]))
        if contact is None:
            return _problem(404, "resource not found", "OBJECT_NOT_FOUND")
        return json_response(200, _public(contact))

    # --- storage and validation -----------------------------------------------------------

    def _store(self, props: dict[str, str]) -> dict[str, Any]:
        contact_id = str(self._next_id)
        self._next_id += 1
        now = _now()
        contact = {
            "id": contact_id,
            "properties": {
                **props,
                "hs_object_id": contact_id,
                "createdate": now,
                "lastmodifieddate": now,
            },
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        self.contacts[contact_id] = contact
        return contact

    def _invalid_properties(self, props: Any) -> Response | None:
        if not isinstance(props, dict):
            return _problem(400, "properties must be an object", "VALIDATION_ERROR")
        problems = [p for name, value in props.items() if (p := self._check(name, value))]
        if not problems:
            return None
        return _problem(
            400, f"Property values were not valid: {json.dumps(problems)}", "VALIDATION_ERROR"
        )

    def _check(self, name: str, value: Any) -> dict[str, Any] | None:
        kind = self.properties.get(name)
        if kind is None:
            error, message = "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
        elif name in _READ_ONLY:
            error, message = "READ_ONLY_VALUE", f"{name} is a read only property"
        elif not isinstance(value, str):
            error, message = "INVALID_TYPE", f"{value!r} is not a string"
        elif kind == "number" and not _is_number(value):
            error, message = "INVALID_INTEGER", f"{value!r} is not a valid number"
        elif kind == "bool" and value not in ("true", "false"):
            error, message = "INVALID_OPTION", f"{value!r} was not one of the allowed options"
        else:
            return None
        return {"isValid": False, "message": message, "error": error, "name": name}


def _matches(contact: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    """OR across filter groups, AND within one (no groups matches everything)."""
    if not groups:
        return True
    props = contact["properties"]
    return any(all(_test(props, f) for f in g.get("filters", [])) for g in groups)


def _test(props: dict[str, Any], flt: dict[str, Any]) -> bool:
    value = props.get(flt["propertyName"])
    operator = flt["operator"]
    if operator == "HAS_PROPERTY":
        return value not in (None, "")
    if operator == "NOT_HAS_PROPERTY":
        return value in (None, "")
    equal = value is not None and str(value).lower() == str(flt.get("value", "")).lower()
    return equal if operator == "EQ" else not equal


def _sort_key(contact: dict[str, Any], sort: dict[str, Any]) -> tuple[str, int]:
    """Sort by one property, ties by id so the order is stable, as HubSpot's is."""
    return (str(contact["properties"].get(sort.get("propertyName"), "")), int(contact["id"]))


def _project(contact: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    keep = set(wanted) | {"hs_object_id", "createdate", "lastmodifieddate"}
    props = {k: contact["properties"].get(k) for k in keep}
    return {**_public(contact), "properties": props}


def _public(contact: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": contact["id"],
        "properties": dict(contact["properties"]),
        "createdAt": contact["createdAt"],
        "updatedAt": contact["updatedAt"],
        "archived": contact["archived"],
    }


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _problem(status: int, message: str, category: str) -> Response:
    return json_response(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
    )


def _failure_body(status: int, message: str | None) -> dict[str, Any]:
    if status == 429:
        return {
            "status": "error",
            "message": message or "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "SECONDLY",
        }
    category = "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR"
    return {
        "status": "error",
        "message": message or f"scripted failure {status}",
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
