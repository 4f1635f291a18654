"""HubSpot CRM v3 client: keeps one contact per phone number in step with our leads.

``upsert_contact`` searches ``POST /crm/v3/objects/contacts/search`` on ``phone``, then
``PATCH``es the match or ``POST``s a new contact. Errors are typed for the activity
that calls it: ``HubSpotTransientError`` (429 with ``retry_after``, 5xx, timeouts,
connection failures) may be retried, ``HubSpotPermanentError`` (other 4xx) not. A
429 whose ``Retry-After`` is short is waited out once inside the client.

HubSpot's search index lags writes by a few seconds, so two upserts of a brand-new
phone in quick succession can both miss the search; the activity layer serialises
upserts per lead (one workflow per lead) to keep that from creating duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict

from adapters.http_common import OnCall, call_status, report, retry_after_seconds
from domain.phones import normalize_phone

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
SERVICE = "hubspot"
CONTACTS = "/crm/v3/objects/contacts"

"""``on_call(service, operation, status, seconds)``, as in ``adapters.whatsapp``."""

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


class HubSpotError(Exception):
    """A HubSpot call that failed. ``retryable`` tells the caller what to do."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        category: str = "",
        correlation_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.category = category
        self.correlation_id = correlation_id
        self.retry_after = retry_after


class HubSpotPermanentError(HubSpotError):
    """HubSpot refused the request (4xx other than 429): retrying cannot help."""

    retryable = False


class HubSpotTransientError(HubSpotError):
    """429 (see ``retry_after``), 5xx, timeouts and connection errors: retry later."""

    retryable = True


class ContactProperties(BaseModel):
    """The contact properties MedicalCor owns in HubSpot. ``None`` leaves a value alone.

    Serialised with HubSpot's property names: consent flags become
    ``consent_<type>`` = ``"true"``/``"false"``; UTM parameters ``utm_<name>``.
    """

    model_config = ConfigDict(frozen=True)

    firstname: str | None = None
    lastname: str | None = None
    email: str | None = None
    lead_status: str | None = None
    lead_score: int | None = None
    lead_source: str | None = None
    procedure_interest: str | None = None
    consents: Mapping[str, bool] = {}
    """Consent type (``marketing_whatsapp`` ...) to whether it is currently granted."""
    utm: Mapping[str, str] = {}
    """``source``, ``medium``, ``campaign``, ``content``, ``term``."""

    def to_hubspot(self, phone: str) -> dict[str, str]:
        """HubSpot's ``properties`` object: every value a string, ``phone`` in E.164."""
        props: dict[str, str] = {"phone": phone}
        for name in (
            "firstname",
            "lastname",
            "email",
            "lead_status",
            "lead_score",
            "lead_source",
            "procedure_interest",
        ):
            value = getattr(self, name)
            if value is not None:
                props[name] = str(value)
        props.update({f"consent_{k}": "true" if v else "false" for k, v in self.consents.items()})
        props.update({f"utm_{k}": v for k, v in self.utm.items() if v})
        return props


class UpsertResult(BaseModel):
    """The HubSpot contact an upsert landed on."""

    model_config = ConfigDict(frozen=True)

    contact_id: str
    created: bool
    properties: dict[str, Any] = {}


class HubSpotClient:
    """HubSpot CRM v3 over one pooled ``httpx.AsyncClient``, authenticated by a Bearer token."""

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        max_rate_limit_wait_s: float = 2.0,
        on_call: OnCall | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._max_wait = max_rate_limit_wait_s
        self._on_call = on_call
        self._sleep = sleep
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._timeout)

    async def __aenter__(self) -> HubSpotClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def find_contact_by_phone(self, phone: str) -> dict[str, Any] | None:
        """The oldest contact whose ``phone`` equals ``phone`` (stored E.164), or ``None``."""
        phone = normalize_phone(phone, path="phone")
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "phone", "operator": "EQ", "value": phone}]}
            ],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "properties": ["phone", "email", "lead_status", "lead_score"],
            "limit": 1,
        }
        data = await self._request("search_contact", "POST", f"{CONTACTS}/search", body)
        results = data.get("results") or []
        return results[0] if results else None

    async def upsert_contact(self, phone: str, properties: ContactProperties) -> UpsertResult:
        """Create or update the contact for ``phone`` (any accepted form; stored E.164)."""
        e164 = normalize_phone(phone, path="phone")
        props = properties.to_hubspot(e164)
        existing = await self.find_contact_by_phone(e164)
        if existing is not None:
            return await self._update(str(existing["id"]), props)
        try:
            data = await self._request("create_contact", "POST", CONTACTS, {"properties": props})
        except HubSpotPermanentError as exc:
            # The e-mail belongs to a contact with another (or no) phone: update that one.
            match = _EXISTING_ID.search(str(exc)) if exc.status_code == 409 else None
            if match is None:
                raise
            return await self._update(match.group(1), props)
        return UpsertResult(contact_id=str(data["id"]), created=True, properties=data["properties"])

    async def _update(self, contact_id: str, props: dict[str, str]) -> UpsertResult:
        path = f"{CONTACTS}/{contact_id}"
        data = await self._request("update_contact", "PATCH", path, {"properties": props})
        return UpsertResult(
            contact_id=str(data["id"]), created=False, properties=data.get("properties") or {}
        )

    async def _request(
        self, operation: str, method: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """One call, with a single bounded wait when HubSpot rate-limits it briefly."""
        try:
            return await self._attempt(operation, method, path, body)
        except HubSpotTransientError as exc:
            wait = exc.retry_after
            if exc.status_code != 429 or wait is None or wait > self._max_wait:
                raise
            await self._sleep(wait)
            return await self._attempt(operation, method, path, body)

    async def _attempt(
        self, operation: str, method: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        status = "error"
        try:
            response = await self._http.request(
                method, self._base + path, json=body, headers=self._headers, timeout=self._timeout
            )
            status = call_status(response.status_code)
            return _json_or_raise(response)
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise HubSpotTransientError(f"HubSpot {operation} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise HubSpotTransientError(f"HubSpot {operation} connection failed: {exc!r}") from exc
        finally:
            report(self._on_call, SERVICE, operation, status, time.perf_counter() - started)


def _json_or_raise(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or the typed error its status means."""
    if response.status_code >= 300:
        raise _error_from(response)
    data = response.json()
    if not isinstance(data, dict):
        raise HubSpotPermanentError("HubSpot answered a non-object", status_code=200)
    return data


def _error_from(response: httpx.Response) -> HubSpotError:
    """HubSpot's ``{status, message, category|errorType, correlationId}`` as an exception."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    status = response.status_code
    cls = HubSpotTransientError if status == 429 or status >= 500 else HubSpotPermanentError
    return cls(
        f"HubSpot HTTP {status}: {data.get('message') or response.reason_phrase}",
        status_code=status,
        category=str(data.get("category") or data.get("errorType") or ""),
        correlation_id=str(data.get("correlationId") or ""),
        retry_after=_retry_after(response.headers.get("retry-after"), status),
    )


def _retry_after(value: str | None, status: int) -> float | None:
    """The ``Retry-After`` header, or one second for a bare 429 (HubSpot's per-second
    limit resets within a second; its 429s do not always carry the header)."""
    seconds = retry_after_seconds(value)
    if seconds is None and status == 429:
        return 1.0
    return seconds
