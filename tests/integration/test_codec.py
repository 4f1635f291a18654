"""Payload encryption: AES-256-GCM with key rotation, nothing personal in Temporal's history,
and the codec-server endpoints the Web UI uses."""

from __future__ import annotations

import base64
import os

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from adapters.settings import Settings
from adapters.temporal.codec import EncryptionCodec, PayloadKeyError, key_id_of
from adapters.temporal.gateway import TemporalWorkflowGateway
from api.codec import codec_router
from domain.functions.registry import REGISTRY
from tests.fixtures.temporal import World, seed_clinic
from workflows.worker import build_workers, running

SECRET = b'{"phone":"+40721234567","name":"Ana"}'


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_round_trip_hides_the_data_and_binds_the_key_id() -> None:
    key = os.urandom(32)
    codec = EncryptionCodec([key])
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata["encryption-key-id"] == key_id_of(key).encode()
    assert b"40721234567" not in sealed.SerializeToString()
    assert (await codec.decode([sealed]))[0] == plain()


async def test_rotation_first_key_encrypts_every_key_decrypts() -> None:
    old, new = os.urandom(32), os.urandom(32)
    [by_old] = await EncryptionCodec([old]).encode([plain()])
    rotated = EncryptionCodec([new, old])
    [by_new] = await rotated.encode([plain()])
    assert by_new.metadata["encryption-key-id"] == key_id_of(new).encode()
    assert await rotated.decode([by_old, by_new]) == [plain(), plain()]
    with pytest.raises(PayloadKeyError, match="unknown key"):
        await EncryptionCodec([new]).decode([by_old])


async def test_tampered_payloads_are_refused() -> None:
    codec = EncryptionCodec([os.urandom(32)])
    [sealed] = await codec.encode([plain()])
    forged = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\x00")
    with pytest.raises(PayloadKeyError, match="authentication"):
        await codec.decode([forged])
    assert await codec.decode([plain()]) == [plain()]  # unencrypted payloads pass through


async def test_history_holds_no_patient_data_in_plain_text(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands, phone="+40799887766")
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        ok = await gateway.start_catalogue(
            clinic.context,
            "lead-scoring",
            {
                "phone": "0799 887 766",
                "channel": "whatsapp",
                "messages": [{"role": "user", "content": "Ma numesc Popescu, vreau implant"}],
                "startNurture": False,
            },
        )
        refused = await gateway.start_catalogue(
            clinic.context, "lead-scoring", {"phone": "0799887", "channel": "whatsapp"}
        )
        for started in (ok, refused):
            handle = temporal_env.client.get_workflow_handle(started.workflow_id)
            try:
                await handle.result()
            except Exception:
                assert started is refused
            status = await gateway.status(clinic.clinic_id, started.workflow_id)
            assert status.status == ("completed" if started is ok else "failed")
    # A client without the codec sees the history exactly as the server stores it.
    raw = await Client.connect(
        temporal_env.client.service_client.config.target_host, data_converter=DataConverter()
    )
    for started in (ok, refused):
        history = await raw.get_workflow_handle(started.workflow_id).fetch_history()
        stored = history.to_json().encode() + b"".join(
            e.SerializeToString() for e in history.events
        )
        for secret in (b"799887766", b"0799 887", b"Popescu", b"implant"):
            assert secret not in stored, secret
        assert b"binary/encrypted" in stored or base64.b64encode(b"binary/encrypted") in stored


def test_codec_server_decodes_for_authorised_operators() -> None:
    codec = EncryptionCodec([os.urandom(32)])
    app = FastAPI()
    app.include_router(codec_router(codec, token="t0ken", ui_origins=["http://ui.local:8233"]))
    client = TestClient(app)
    body = json_format.MessageToJson(Payloads(payloads=[plain()]))
    encoded = client.post("/codec/encode", content=body, headers={"Authorization": "Bearer t0ken"})
    assert encoded.status_code == 200
    sealed = json_format.Parse(encoded.text, Payloads())
    assert sealed.payloads[0].metadata["encoding"] == b"binary/encrypted"
    decoded = client.post(
        "/codec/decode",
        content=encoded.text,
        headers={"Authorization": "Bearer t0ken", "Origin": "http://ui.local:8233"},
    )
    assert decoded.status_code == 200
    assert decoded.headers["access-control-allow-origin"] == "http://ui.local:8233"
    assert json_format.Parse(decoded.text, Payloads()).payloads[0] == plain()
    assert client.post("/codec/t/t0ken/decode", content=encoded.text).status_code == 200
    assert client.post("/codec/decode", content=encoded.text).status_code == 401
    assert (
        client.post(
            "/codec/decode", content=encoded.text, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert client.post("/codec/t/wrong/decode", content=encoded.text).status_code == 403
    preflight = client.options(
        "/codec/decode",
        headers={"Origin": "http://ui.local:8233", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "X-Namespace" in preflight.headers["access-control-allow-headers"]
    other = client.options("/codec/decode", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
