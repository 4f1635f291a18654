"""WhatsApp through 360dialog: the sending client, webhook checks and a sandbox transport.

``WhatsAppClient`` speaks the 360dialog API (On-Premises shape at
``https://waba.360dialog.io/v1``, Cloud API shape at ``https://waba-v2.360dialog.io``;
both take the same message body). Failures are typed so a Temporal activity can decide:
``WhatsAppPermanentError`` must not be retried, ``WhatsAppTransientError`` may be
(``retry_after`` says when, if the provider said).

``SandboxWhatsAppTransport`` has the same interface and records every message in
PostgreSQL instead of sending it: development runs without an API key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

import asyncpg
import httpx
from pydantic import BaseModel, ConfigDict

from adapters.http_common import OnCall, call_status, report, retry_after_seconds
from domain.errors import IdempotencyKeyReused, InvalidArguments
from domain.messaging import InboundMessage, ProviderError, StatusUpdate
from domain.phones import normalize_phone

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://waba.360dialog.io/v1"
SERVICE = "whatsapp"
MAX_TEXT_LENGTH = 4096

"""``on_call(service, operation, status, seconds)``; status is ``success``, ``timeout``,
``error`` (network), ``rate_limited``, ``http_4xx`` or ``http_5xx``."""

# Provider codes that mean "try again later" even when the HTTP status is a 4xx:
# Graph API throttling (4, 80007), Cloud API throughput and pair rate limits
# (130429, 131056), and its temporary failures (1, 2, 131000, 131016, 133004).
RETRYABLE_PROVIDER_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})


class WhatsAppError(Exception):
    """A send that did not go through. ``retryable`` tells the caller what to do."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider_code: int | str | None = None,
        title: str = "",
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.provider_code = provider_code
        self.title = title
        self.details = details
        self.retry_after = retry_after


class WhatsAppPermanentError(WhatsAppError):
    """The provider refused the message (4xx): retrying the same request cannot help."""

    retryable = False


class WhatsAppTransientError(WhatsAppError):
    """5xx, 429, throttling codes, timeouts and connection errors: retry later."""

    retryable = True


class WhatsAppTransport(Protocol):
    """What the messaging activities need from a WhatsApp sender."""

    async def send_text(self, to: str, body: str, idempotency_key: str) -> str:
        """Send free text; return the provider's message id."""
        ...

    async def send_template(
        self, to: str, name: str, language: str, params: Sequence[str], idempotency_key: str
    ) -> str:
        """Send an approved template with its ordered body parameters; return the id."""
        ...

    async def aclose(self) -> None: ...


# --- Message bodies -------------------------------------------------------------------


def wa_recipient(to: str) -> str:
    """The ``to`` field WhatsApp expects: the E.164 number without its ``+``."""
    return normalize_phone(to, path="to").lstrip("+")


def text_payload(to: str, body: str) -> dict[str, Any]:
    """The JSON body of a free-text message."""
    if not body or not body.strip():
        raise _invalid("message", "message text is empty", "a non-empty text")
    if len(body) > MAX_TEXT_LENGTH:
        raise _invalid("message", "message text is too long", f"at most {MAX_TEXT_LENGTH}")
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_recipient(to),
        "type": "text",
        "text": {"body": body},
    }


def template_payload(
    to: str, name: str, language: str, params: Sequence[str], namespace: str | None = None
) -> dict[str, Any]:
    """The JSON body of a template message; ``params`` fill ``{{1}}``, ``{{2}}`` ... in order."""
    template: dict[str, Any] = {
        "name": name,
        "language": {"policy": "deterministic", "code": language},
    }
    if namespace:
        template["namespace"] = namespace
    if params:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in params]}
        ]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_recipient(to),
        "type": "template",
        "template": template,
    }


def _invalid(path: str, message: str, expected: str) -> InvalidArguments:
    return InvalidArguments(
        message, errors=[{"path": path, "message": message, "expected": expected}]
    )


# --- The 360dialog client -------------------------------------------------------------


class WhatsAppClient:
    """Sends WhatsApp messages through 360dialog over one pooled ``httpx.AsyncClient``."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        namespace: str | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        on_call: OnCall | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/messages"
        self._namespace = namespace
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._on_call = on_call
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._timeout)

    async def __aenter__(self) -> WhatsAppClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def send_text(self, to: str, body: str, idempotency_key: str) -> str:
        """Send free text (only inside the 24-hour window the person opened)."""
        return await self._send("send_text", text_payload(to, body), idempotency_key)

    async def send_template(
        self, to: str, name: str, language: str, params: Sequence[str], idempotency_key: str
    ) -> str:
        """Send the approved template ``name`` in ``language`` with ordered ``params``."""
        payload = template_payload(to, name, language, params, self._namespace)
        return await self._send("send_template", payload, idempotency_key)

    async def _send(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> str:
        started = time.perf_counter()
        status = "error"
        try:
            response = await self._post(payload, idempotency_key)
            status = call_status(response.status_code)
            return _message_id(response)
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise WhatsAppTransientError(f"WhatsApp request timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise WhatsAppTransientError(f"WhatsApp connection failed: {exc!r}") from exc
        finally:
            report(self._on_call, SERVICE, operation, status, time.perf_counter() - started)

    async def _post(self, payload: dict[str, Any], idempotency_key: str) -> httpx.Response:
        headers = {
            "D360-API-KEY": self._api_key,
            # Not deduplicated by the provider; sent so its logs and ours can be joined.
            "Idempotency-Key": idempotency_key,
        }
        return await self._http.post(
            self._url, json=payload, headers=headers, timeout=self._timeout
        )


def _message_id(response: httpx.Response) -> str:
    """The provider's id from ``messages[0].id``, or the typed error the response means."""
    if response.status_code >= 300:
        raise _error_from(response)
    try:
        message_id = response.json()["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        # Not retried: the message may have been accepted, and a retry could send it twice.
        raise WhatsAppPermanentError(
            "WhatsApp answered without a message id", status_code=response.status_code
        ) from exc
    return str(message_id)


def _error_from(response: httpx.Response) -> WhatsAppError:
    code, title, details = provider_error(response)
    status = response.status_code
    message = f"WhatsApp HTTP {status}: {title or details or response.reason_phrase}"
    if code is not None:
        message += f" (code {code})"
    transient = status in (408, 429) or status >= 500 or code in RETRYABLE_PROVIDER_CODES
    cls = WhatsAppTransientError if transient else WhatsAppPermanentError
    return cls(
        message,
        status_code=status,
        provider_code=code,
        title=title,
        details=details,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def provider_error(response: httpx.Response) -> tuple[int | str | None, str, str]:
    """``(code, title, details)`` from any of the provider's error shapes.

    On-Premises: ``{"errors": [{"code", "title", "details"}]}``; Cloud API (Graph):
    ``{"error": {"code", "message", "error_data": {"details"}}}``; 360dialog's own
    gateway errors: ``{"meta": {"developer_message", "http_code"}}``.
    """
    try:
        data = response.json()
    except ValueError:
        return None, response.reason_phrase, response.text[:500]
    if not isinstance(data, dict):
        return None, response.reason_phrase, str(data)[:500]
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return first.get("code"), str(first.get("title", "")), str(first.get("details", ""))
    error = data.get("error")
    if isinstance(error, dict):
        error_data = error.get("error_data") or {}
        details = error_data.get("details", "") if isinstance(error_data, dict) else ""
        return error.get("code"), str(error.get("message", "")), str(details)
    meta = data.get("meta")
    if isinstance(meta, dict):
        return None, str(meta.get("developer_message", "")), ""
    return None, response.reason_phrase, ""


# --- Webhooks ---------------------------------------------------------------------------


def verify_signature(body: bytes, header_value: str | None, secret: str) -> bool:
    """True when ``header_value`` is the HMAC-SHA256 of ``body`` under ``secret``.

    Accepts ``sha256=<hex>`` (``X-Hub-Signature-256``) or the bare hex digest, in any
    case; compares in constant time. A missing header or secret is never valid.
    """
    if not header_value or not secret:
        return False
    given = header_value.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode())


WebhookItem = InboundMessage | StatusUpdate


def parse_webhook(payload: Mapping[str, Any]) -> list[WebhookItem]:
    """Inbound messages and status updates in a webhook, in payload order.

    Understands the Cloud API envelope (``entry[].changes[].value``) and the
    On-Premises flat shape (``messages`` / ``statuses`` at the top). Statuses other
    than sent/delivered/read/failed are skipped; a malformed item raises
    ``InvalidArguments`` with its JSON path.
    """
    if not isinstance(payload, Mapping):
        raise _invalid("$", "webhook payload is not an object", "a JSON object")
    items: list[WebhookItem] = []
    for value, path in _webhook_values(payload):
        names = _contact_names(value.get("contacts"))
        for i, message in enumerate(_list(value, "messages", path)):
            items.append(_inbound(message, f"{path}.messages[{i}]", names))
        for i, status in enumerate(_list(value, "statuses", path)):
            update = _status(status, f"{path}.statuses[{i}]")
            if update is not None:
                items.append(update)
    return items


def _webhook_values(payload: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    if "entry" not in payload:
        return [(payload, "$")]
    values: list[tuple[Mapping[str, Any], str]] = []
    for i, entry in enumerate(_list(payload, "entry", "$")):
        for j, change in enumerate(_list(entry, "changes", f"$.entry[{i}]")):
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping):
                values.append((value, f"$.entry[{i}].changes[{j}].value"))
    return values


def _list(obj: Any, key: str, path: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"{path}.{key}", f"{key} is not a list", "a JSON array")
    return value


def _contact_names(contacts: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else []:
        if isinstance(contact, Mapping):
            name = (contact.get("profile") or {}).get("name")
            if contact.get("wa_id") and name:
                names[str(contact["wa_id"])] = str(name)
    return names


def _inbound(message: Any, path: str, names: Mapping[str, str]) -> InboundMessage:
    sender = _field(message, "from", path)
    kind = str(message.get("type") or "unknown")
    text, reply_id = _message_text(message, kind)
    context = message.get("context")
    return InboundMessage(
        provider_message_id=_field(message, "id", path),
        from_phone=_e164(sender, f"{path}.from"),
        timestamp=_timestamp(message, path),
        type=kind,
        text=text,
        reply_id=reply_id,
        context_message_id=context.get("id") if isinstance(context, Mapping) else None,
        contact_name=names.get(sender),
    )


def _message_text(message: Mapping[str, Any], kind: str) -> tuple[str | None, str | None]:
    """The readable text of a message and the id of the button or reply chosen."""
    body = message.get(kind)
    if not isinstance(body, Mapping):
        return None, None
    if kind == "text":
        return _opt(body.get("body")), None
    if kind == "button":
        return _opt(body.get("text")), _opt(body.get("payload"))
    if kind == "interactive":
        reply = body.get(str(body.get("type")))
        if isinstance(reply, Mapping):
            return _opt(reply.get("title") or reply.get("body")), _opt(reply.get("id"))
        return None, None
    return _opt(body.get("caption")), None


def _status(status: Any, path: str) -> StatusUpdate | None:
    value = _field(status, "status", path)
    if value not in ("sent", "delivered", "read", "failed"):
        log.info("skipping WhatsApp status %r at %s", value, path)
        return None
    recipient = status.get("recipient_id")
    return StatusUpdate(
        provider_message_id=_field(status, "id", path),
        status=value,
        timestamp=_timestamp(status, path),
        recipient=_e164(str(recipient), f"{path}.recipient_id") if recipient else None,
        errors=tuple(_provider_errors(status.get("errors"))),
    )


def _provider_errors(errors: Any) -> list[ProviderError]:
    found: list[ProviderError] = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            data = error.get("error_data")
            details = data.get("details", "") if isinstance(data, Mapping) else ""
            found.append(
                ProviderError(
                    code=error.get("code"),
                    title=str(error.get("title") or error.get("message") or ""),
                    details=str(details or error.get("details") or ""),
                )
            )
    return found


def _field(obj: Any, key: str, path: str) -> str:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None or value == "":
        raise _invalid(f"{path}.{key}", f"{key} is missing", "a non-empty string")
    return str(value)


def _timestamp(obj: Mapping[str, Any], path: str) -> datetime:
    raw = _field(obj, "timestamp", path)
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise _invalid(f"{path}.timestamp", "not a Unix timestamp", "seconds") from exc


def _e164(wa_id: str, path: str) -> str:
    digits = wa_id.lstrip("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise _invalid(path, f"not a WhatsApp id: {wa_id!r}", "digits of an E.164 number")
    return "+" + digits


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


# --- Sandbox transport -------------------------------------------------------------------


class SandboxMessage(BaseModel):
    """A message the sandbox recorded instead of sending."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    idempotency_key: str
    clinic_id: str | None
    to: str
    type: Literal["text", "template"]
    template_name: str | None
    language: str | None
    params: list[str]
    body: str | None
    payload: dict[str, Any]
    """The exact JSON body the real client would have sent."""
    sent_at: datetime


_INSERT = """
INSERT INTO whatsapp_sandbox_outbox
    (message_id, idempotency_key, clinic_id, recipient, message_type,
     template_name, template_language, template_params, body, payload, sent_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING message_id
"""

_COLUMNS = """
message_id, idempotency_key, clinic_id, recipient, message_type, template_name,
template_language, template_params, body, payload::text AS payload, sent_at
"""


class SandboxWhatsAppTransport:
    """A ``WhatsAppTransport`` that records messages in PostgreSQL (development, no key).

    Builds exactly the body the real client would send (same validation), stores it
    with a generated ``wamid.SANDBOX...`` id, and answers that id. The same
    idempotency key records once and returns the first id; reusing it for a different
    message raises ``IdempotencyKeyReused``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        clinic_id: str | None = None,
        on_call: OnCall | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        namespace: str | None = None,
    ) -> None:
        self._pool = pool
        self._clinic_id = clinic_id
        self._on_call = on_call
        self._clock = clock
        self._namespace = namespace

    async def aclose(self) -> None:
        """Nothing to close: the pool belongs to the caller."""

    async def send_text(self, to: str, body: str, idempotency_key: str) -> str:
        """Record a free-text message; return its sandbox id."""
        payload = text_payload(to, body)
        record: tuple[Any, ...] = (payload["to"], "text", None, None, [], body)
        return await self._timed("send_text", self._record(record, payload, idempotency_key))

    async def send_template(
        self, to: str, name: str, language: str, params: Sequence[str], idempotency_key: str
    ) -> str:
        """Record a template message; return its sandbox id."""
        payload = template_payload(to, name, language, params, self._namespace)
        params_list = [str(p) for p in params]
        record: tuple[Any, ...] = (payload["to"], "template", name, language, params_list, None)
        return await self._timed("send_template", self._record(record, payload, idempotency_key))

    async def list_messages(
        self, clinic_id: str | None = None, limit: int = 50
    ) -> list[SandboxMessage]:
        """The newest ``limit`` recorded messages, of one clinic or of all."""
        query = f"SELECT {_COLUMNS} FROM whatsapp_sandbox_outbox"
        args: list[Any] = []
        if clinic_id is not None:
            query += " WHERE clinic_id = $1"
            args.append(clinic_id)
        query += f" ORDER BY sent_at DESC, id DESC LIMIT ${len(args) + 1}"
        rows = await self._pool.fetch(query, *args, max(1, min(limit, 1000)))
        return [_sandbox_message(row) for row in rows]

    async def _timed(self, operation: str, work: Awaitable[str]) -> str:
        started = time.perf_counter()
        status = "error"
        try:
            message_id = await work
            status = "success"
            return message_id
        finally:
            report(self._on_call, SERVICE, operation, status, time.perf_counter() - started)

    async def _record(
        self, record: tuple[Any, ...], payload: dict[str, Any], idempotency_key: str
    ) -> str:
        if not idempotency_key:
            raise _invalid("idempotencyKey", "idempotency key is empty", "a non-empty string")
        message_id = "wamid.SANDBOX" + uuid.uuid4().hex.upper()
        inserted = await self._pool.fetchval(
            _INSERT,
            message_id,
            idempotency_key,
            self._clinic_id,
            "+" + record[0],
            *record[1:],
            json.dumps(payload),
            self._clock(),
        )
        if inserted is not None:
            return str(inserted)
        return await self._existing(idempotency_key, record)

    async def _existing(self, idempotency_key: str, record: tuple[Any, ...]) -> str:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM whatsapp_sandbox_outbox WHERE idempotency_key = $1",
            idempotency_key,
        )
        if row is None:  # pragma: no cover - the conflicting row cannot vanish (no deletes)
            raise RuntimeError("sandbox outbox row disappeared")
        stored = (
            row["recipient"].lstrip("+"),
            row["message_type"],
            row["template_name"],
            row["template_language"],
            list(row["template_params"]),
            row["body"],
        )
        if stored != record or row["clinic_id"] != self._clinic_id:
            raise IdempotencyKeyReused(
                "idempotency key already used for a different WhatsApp message",
                idempotency_key=idempotency_key,
                message_id=row["message_id"],
            )
        return str(row["message_id"])


def _sandbox_message(row: Mapping[str, Any]) -> SandboxMessage:
    return SandboxMessage(
        message_id=row["message_id"],
        idempotency_key=row["idempotency_key"],
        clinic_id=row["clinic_id"],
        to=row["recipient"],
        type=row["message_type"],
        template_name=row["template_name"],
        language=row["template_language"],
        params=list(row["template_params"]),
        body=row["body"],
        payload=json.loads(row["payload"]),
        sent_at=row["sent_at"],
    )
