"""The 360dialog client against a fake speaking its wire protocol; webhooks; the sandbox."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.whatsapp import (
    SandboxWhatsAppTransport,
    WhatsAppClient,
    WhatsAppPermanentError,
    WhatsAppTransientError,
    parse_webhook,
    template_payload,
    verify_signature,
)
from domain.errors import IdempotencyKeyReused, InvalidArguments
from domain.messaging import TEMPLATES, InboundMessage, StatusUpdate, validate_params
from tests.fakes import (
    Fake360Dialog,
    Scripted,
    cloud_webhook,
    contact,
    sign_webhook,
    status_update,
    text_message,
    webhook_body,
)

PHONE = "+40721234567"
MIGRATION = Path(__file__).parents[2] / "adapters/postgres/migrations/0040_sandbox_outbox.sql"
CATALOGUE_COUNTS = {name: len(t.params) for name, t in TEMPLATES.items()}
CONFIRMATION = {"name": "Ana", "date": "05.03.2025", "time": "14:30", "location": "Str. Lunii 3"}

Call = tuple[str, str, str, float]


@pytest.fixture
def fake() -> Iterator[Fake360Dialog]:
    with Fake360Dialog(templates=CATALOGUE_COUNTS) as server:
        yield server


@pytest.fixture
def calls() -> list[Call]:
    return []


def _client(
    fake: Fake360Dialog, calls: list[Call], *, cloud: bool = False, **kw: Any
) -> WhatsAppClient:
    base = fake.url if cloud else fake.url + "/v1"
    return WhatsAppClient(fake.api_key, base_url=base, on_call=lambda *a: calls.append(a), **kw)


# --- sending --------------------------------------------------------------------------


async def test_send_text_speaks_the_onprem_shape(fake: Fake360Dialog, calls: list[Call]) -> None:
    async with _client(fake, calls) as client:
        message_id = await client.send_text("0721 234 567", "Bună ziua!", "key-1")

    assert message_id == fake.accepted[0]["_id"]
    (request,) = fake.requests
    assert request.path == "/v1/messages"
    assert request.headers["d360-api-key"] == fake.api_key
    assert request.headers["idempotency-key"] == "key-1"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "40721234567",
        "type": "text",
        "text": {"body": "Bună ziua!"},
    }
    assert [(c[0], c[1], c[2]) for c in calls] == [("whatsapp", "send_text", "success")]
    assert calls[0][3] >= 0


async def test_send_template_speaks_the_cloud_shape(fake: Fake360Dialog, calls: list[Call]) -> None:
    params = validate_params("appointment_confirmation", CONFIRMATION)
    async with _client(fake, calls, cloud=True, namespace="ns_clinic") as client:
        message_id = await client.send_template(
            PHONE, "appointment_confirmation", "ro", params, "key-2"
        )

    assert message_id.startswith("wamid.")
    assert message_id == fake.accepted[0]["_id"]
    (request,) = fake.requests
    assert request.path == "/messages"
    assert request.json()["template"] == {
        "namespace": "ns_clinic",
        "name": "appointment_confirmation",
        "language": {"policy": "deterministic", "code": "ro"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "05.03.2025"},
                    {"type": "text", "text": "14:30"},
                    {"type": "text", "text": "Str. Lunii 3"},
                ],
            }
        ],
    }
    assert calls[0][:3] == ("whatsapp", "send_template", "success")


async def test_invalid_phone_is_refused_before_any_request(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    async with _client(fake, calls) as client:
        with pytest.raises(InvalidArguments) as exc:
            await client.send_text("12", "hi", "key-3")
    assert exc.value.details["errors"][0]["path"] == "to"
    assert fake.requests == []


async def test_unknown_template_is_permanent_with_onprem_code(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    async with _client(fake, calls) as client:
        with pytest.raises(WhatsAppPermanentError) as exc:
            await client.send_template(PHONE, "not_approved", "ro", ["x"], "key-4")
    assert exc.value.status_code == 400
    assert exc.value.provider_code == 2001
    assert "does not exist" in exc.value.title
    assert exc.value.retryable is False
    assert calls[0][2] == "http_4xx"


async def test_param_count_mismatch_is_permanent_with_cloud_code(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    async with _client(fake, calls, cloud=True) as client:
        with pytest.raises(WhatsAppPermanentError) as exc:
            await client.send_template(PHONE, "appointment_confirmation", "ro", ["Ana"], "k")
    assert exc.value.provider_code == 132000
    assert "expected 4, got 1" in exc.value.details


async def test_newline_in_a_parameter_is_refused_by_the_provider(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    async with _client(fake, calls) as client:
        with pytest.raises(WhatsAppPermanentError) as exc:
            await client.send_template(
                PHONE, "treatment_follow_up", "en", ["Ana", "two\nlines"], "k"
            )
    assert exc.value.provider_code == 2006


async def test_wrong_api_key_is_permanent(fake: Fake360Dialog, calls: list[Call]) -> None:
    async with WhatsAppClient("wrong", base_url=fake.url + "/v1") as client:
        with pytest.raises(WhatsAppPermanentError) as exc:
            await client.send_text(PHONE, "hi", "k")
    assert exc.value.status_code == 401
    assert exc.value.title == "Invalid api key"


async def test_undeliverable_is_permanent(fake: Fake360Dialog, calls: list[Call]) -> None:
    fake.fail_next(400, kind="undeliverable")
    async with _client(fake, calls, cloud=True) as client:
        with pytest.raises(WhatsAppPermanentError) as exc:
            await client.send_text(PHONE, "hi", "k")
    assert exc.value.provider_code == 131026


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient(
    fake: Fake360Dialog, calls: list[Call], status: int
) -> None:
    fake.fail_next(status)
    async with _client(fake, calls) as client:
        with pytest.raises(WhatsAppTransientError) as exc:
            await client.send_text(PHONE, "hi", "k")
        assert exc.value.status_code == status
        assert exc.value.retryable is True
        # The outage is over: the same client sends again.
        assert await client.send_text(PHONE, "hi", "k")
    assert [c[2] for c in calls] == ["http_5xx", "success"]


async def test_429_carries_retry_after_seconds(fake: Fake360Dialog, calls: list[Call]) -> None:
    fake.fail_next(429, retry_after="7")
    async with _client(fake, calls, cloud=True) as client:
        with pytest.raises(WhatsAppTransientError) as exc:
            await client.send_text(PHONE, "hi", "k")
    assert exc.value.retry_after == 7.0
    assert exc.value.provider_code == 130429
    assert calls[0][2] == "rate_limited"


async def test_429_retry_after_as_http_date(fake: Fake360Dialog, calls: list[Call]) -> None:
    fake.fail_next(
        429, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    )
    async with _client(fake, calls) as client:
        with pytest.raises(WhatsAppTransientError) as exc:
            await client.send_text(PHONE, "hi", "k")
    assert exc.value.retry_after is not None
    assert 25 <= exc.value.retry_after <= 31


async def test_throughput_limit_code_is_transient_even_as_400(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    fake.fail_next(400, kind="rate_limit")
    async with _client(fake, calls, cloud=True) as client:
        with pytest.raises(WhatsAppTransientError) as exc:
            await client.send_text(PHONE, "hi", "k")
    assert exc.value.provider_code == 130429


async def test_timeout_is_transient(fake: Fake360Dialog, calls: list[Call]) -> None:
    fake.delay_next(2.0)
    async with _client(fake, calls, timeout_s=0.3) as client:
        with pytest.raises(WhatsAppTransientError, match="timed out"):
            await client.send_text(PHONE, "hi", "k")
    assert calls[0][2] == "timeout"
    assert 0.25 <= calls[0][3] < 2.0


async def test_connection_refused_is_transient(calls: list[Call]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = WhatsAppClient(
        "k", base_url=f"http://127.0.0.1:{port}/v1", on_call=lambda *a: calls.append(a)
    )
    async with client:
        with pytest.raises(WhatsAppTransientError, match="connection failed"):
            await client.send_text(PHONE, "hi", "k")
    assert calls[0][2] == "error"


async def test_success_without_message_id_is_not_retried(
    fake: Fake360Dialog, calls: list[Call]
) -> None:
    fake.enqueue(Scripted(200, {"meta": {"api_status": "stable"}}, route="messages"))
    async with _client(fake, calls) as client:
        with pytest.raises(WhatsAppPermanentError, match="without a message id"):
            await client.send_text(PHONE, "hi", "k")


async def test_a_failing_telemetry_callback_does_not_fail_the_send(fake: Fake360Dialog) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics backend down")

    async with WhatsAppClient(fake.api_key, base_url=fake.url + "/v1", on_call=broken) as client:
        assert await client.send_text(PHONE, "hi", "k")


# --- webhooks ---------------------------------------------------------------------------

SECRET = "webhook-secret"


def test_signature_accepts_both_forms_and_rejects_tampering() -> None:
    body = webhook_body(cloud_webhook(messages=[text_message("40721234567", "DA")]))
    header = sign_webhook(body, SECRET)
    assert header.startswith("sha256=")
    assert verify_signature(body, header, SECRET)
    assert verify_signature(body, header.removeprefix("sha256="), SECRET)
    assert verify_signature(body, "SHA256=" + header[7:].upper(), SECRET)
    assert not verify_signature(body + b" ", header, SECRET)
    assert not verify_signature(body, header, "other-secret")
    assert not verify_signature(body, "", SECRET)
    assert not verify_signature(body, None, SECRET)
    assert not verify_signature(body, header, "")
    assert not verify_signature(body, "sha256=zz", SECRET)
    assert not verify_signature(body, "sha256=ăâ", SECRET)


def test_parse_cloud_webhook_messages_and_statuses() -> None:
    ts = 1_740_000_000
    button = {
        "from": "40721234567",
        "id": "wamid.button",
        "timestamp": str(ts),
        "type": "button",
        "context": {"from": "40312345678", "id": "wamid.request"},
        "button": {"text": "DA", "payload": "consent_yes"},
    }
    interactive = {
        "from": "40721234567",
        "id": "wamid.inter",
        "timestamp": str(ts),
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "slot-3", "title": "Luni 14:00"},
        },
    }
    image = {
        "from": "40721234567",
        "id": "wamid.img",
        "timestamp": str(ts),
        "type": "image",
        "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "radiografia"},
    }
    failed = status_update(
        "wamid.out1",
        "failed",
        "40721234567",
        ts=ts,
        errors=[
            {
                "code": 131026,
                "title": "Message undeliverable",
                "error_data": {"details": "Receiver is not on WhatsApp"},
            }
        ],
    )
    payload = cloud_webhook(
        contacts=[contact("40721234567", "Ana Pop")],
        messages=[
            text_message("40721234567", "Sunt de acord", message_id="wamid.t", ts=ts),
            button,
            interactive,
            image,
        ],
        statuses=[
            status_update("wamid.out0", "delivered", "40721234567", ts=ts),
            failed,
            status_update("wamid.out2", "deleted", "40721234567", ts=ts),
        ],
    )

    items = parse_webhook(payload)

    inbound = [i for i in items if isinstance(i, InboundMessage)]
    statuses = [i for i in items if isinstance(i, StatusUpdate)]
    assert [(m.type, m.text, m.reply_id) for m in inbound] == [
        ("text", "Sunt de acord", None),
        ("button", "DA", "consent_yes"),
        ("interactive", "Luni 14:00", "slot-3"),
        ("image", "radiografia", None),
    ]
    first = inbound[0]
    assert first.provider_message_id == "wamid.t"
    assert first.from_phone == "+40721234567"
    assert first.contact_name == "Ana Pop"
    assert first.timestamp == datetime.fromtimestamp(ts, UTC)
    assert inbound[1].context_message_id == "wamid.request"
    assert [(s.provider_message_id, s.status) for s in statuses] == [
        ("wamid.out0", "delivered"),
        ("wamid.out1", "failed"),
    ]
    assert statuses[1].recipient == "+40721234567"
    assert statuses[1].errors[0].code == 131026
    assert statuses[1].errors[0].details == "Receiver is not on WhatsApp"


def test_parse_onprem_flat_webhook() -> None:
    payload = {
        "contacts": [contact("491701234567", "Jonas")],
        "messages": [text_message("491701234567", "Ja", message_id="ABGG", ts=1_700_000_000)],
        "statuses": [status_update("gBEG1", "read", "491701234567", ts=1_700_000_001)],
    }
    items = parse_webhook(payload)
    assert isinstance(items[0], InboundMessage)
    assert items[0].from_phone == "+491701234567"
    assert items[0].contact_name == "Jonas"
    assert isinstance(items[1], StatusUpdate)
    assert items[1].status == "read"


def test_malformed_webhook_item_names_its_path() -> None:
    message = text_message("40721234567", "hi")
    del message["id"]
    with pytest.raises(InvalidArguments) as exc:
        parse_webhook(cloud_webhook(messages=[message]))
    assert exc.value.details["errors"][0]["path"] == "$.entry[0].changes[0].value.messages[0].id"


# --- the sandbox transport ----------------------------------------------------------------


@pytest.fixture
async def sandbox_pool() -> AsyncIterator[asyncpg.Pool[Any]]:
    dsn = os.environ.get(
        "MEDICALCOR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = "sandbox_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=4, server_settings={"search_path": schema}
    )
    try:
        sql = MIGRATION.read_text()
        await pool.execute(sql)
        await pool.execute(sql)  # idempotent: a second run changes nothing
        yield pool
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def test_sandbox_records_template_with_the_real_payload(
    sandbox_pool: asyncpg.Pool[Any],
) -> None:
    calls: list[Call] = []
    sandbox = SandboxWhatsAppTransport(
        sandbox_pool, clinic_id="clinic-a", on_call=lambda *a: calls.append(a)
    )
    params = validate_params("appointment_confirmation", CONFIRMATION)

    message_id = await sandbox.send_template(
        "0721234567", "appointment_confirmation", "ro", params, "k1"
    )

    assert message_id.startswith("wamid.SANDBOX")
    (recorded,) = await sandbox.list_messages()
    assert recorded.message_id == message_id
    assert recorded.clinic_id == "clinic-a"
    assert recorded.to == PHONE
    assert recorded.type == "template"
    assert recorded.template_name == "appointment_confirmation"
    assert recorded.language == "ro"
    assert recorded.params == params
    assert recorded.idempotency_key == "k1"
    assert recorded.payload == template_payload(PHONE, "appointment_confirmation", "ro", params)
    assert calls[0][:3] == ("whatsapp", "send_template", "success")


async def test_sandbox_same_key_records_once(sandbox_pool: asyncpg.Pool[Any]) -> None:
    sandbox = SandboxWhatsAppTransport(sandbox_pool, clinic_id="clinic-a")
    first = await sandbox.send_text(PHONE, "Bună!", "same-key")
    again = await sandbox.send_text(PHONE, "Bună!", "same-key")
    assert again == first
    assert len(await sandbox.list_messages()) == 1


async def test_sandbox_same_key_for_another_message_is_refused(
    sandbox_pool: asyncpg.Pool[Any],
) -> None:
    sandbox = SandboxWhatsAppTransport(sandbox_pool)
    await sandbox.send_text(PHONE, "Bună!", "reused")
    with pytest.raises(IdempotencyKeyReused):
        await sandbox.send_text(PHONE, "Alt text", "reused")
    with pytest.raises(IdempotencyKeyReused):
        await sandbox.send_text("+40722000000", "Bună!", "reused")


async def test_sandbox_lists_newest_first_per_clinic(sandbox_pool: asyncpg.Pool[Any]) -> None:
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=i) for i in range(10))
    a = SandboxWhatsAppTransport(sandbox_pool, clinic_id="a", clock=lambda: next(ticks))
    b = SandboxWhatsAppTransport(sandbox_pool, clinic_id="b", clock=lambda: next(ticks))
    for i in range(3):
        await a.send_text(PHONE, f"a{i}", f"a-{i}")
    await b.send_text(PHONE, "b0", "b-0")

    assert [m.body for m in await a.list_messages("a")] == ["a2", "a1", "a0"]
    assert [m.body for m in await a.list_messages("a", limit=2)] == ["a2", "a1"]
    assert [m.body for m in await a.list_messages("b")] == ["b0"]
    assert [m.body for m in await a.list_messages()] == ["b0", "a2", "a1", "a0"]
    assert (await a.list_messages("a"))[0].sent_at == start + timedelta(minutes=2)


async def test_sandbox_validates_like_the_real_client(sandbox_pool: asyncpg.Pool[Any]) -> None:
    sandbox = SandboxWhatsAppTransport(sandbox_pool)
    with pytest.raises(InvalidArguments):
        await sandbox.send_text("not a phone", "hi", "k")
    with pytest.raises(InvalidArguments):
        await sandbox.send_text(PHONE, "   ", "k")
    assert await sandbox.list_messages() == []
