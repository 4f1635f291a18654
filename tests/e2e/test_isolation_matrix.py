"""Tenant isolation and scopes, end to end, over the real system (``stack`` fixture).

The Security issue's matrix: a key of one clinic can neither read, nor change, nor
infer another clinic's data through any surface: the twelve gateway functions
(``POST /ai/execute``), natural and workflow requests, MCP, the GDPR admin routes,
``/diagnostics/traces``, the WhatsApp sandbox outbox and ``/ai/keys``. Every case
runs both ways (A→B and B→A) on clinics that share patient, appointment, doctor and
lead ids and phones.

How "cannot infer" is checked: the answer about the victim's id must be EXACTLY the
answer about an id nobody has (after removing request ids, timings and minted ids,
and putting one placeholder in place of both ids). How "cannot change": the
victim's slice of the ``events`` table (count, last position, digest) is the same
before and after. How "cannot read": no secret of the victim (its marker string, its
own ids, its keys, its workflow, message and trace ids) appears in any answer,
except what the caller itself sent.

Scopes: a read-only key is refused every write, outbound and destructive function
(FORBIDDEN naming the missing scope) on every surface and nothing changes; no key
→ 401 on every protected route of the OpenAPI document; a revoked key → 401 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from api.dev_setup import keys_revoke
from domain.functions import REGISTRY
from tests.e2e.stack_support import assert_problem, call_body, leaked, normalized
from tests.fixtures.stack import SHARED, Stack, Tenant

TWELVE = {
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
}
DIRECTIONS = [
    pytest.param(("clinic-a", "clinic-b"), id="a-to-b"),
    pytest.param(("clinic-b", "clinic-a"), id="b-to-a"),
]


@pytest.fixture(params=DIRECTIONS)
def pair(request: pytest.FixtureRequest, stack: Stack) -> tuple[Tenant, Tenant]:
    """(attacker, victim)."""
    attacker, victim = request.param
    return stack.tenant(attacker), stack.tenant(victim)


# --- subjects: what an id probe is about ------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """Ids and contact data of one person/thing: the victim's own, or nobody's."""

    patient: str
    phone: str
    email: str
    doctor: str
    appointment: str

    @property
    def ids(self) -> list[str]:
        """Every spelling the answers may echo (phones with and without the plus)."""
        fields = [self.patient, self.phone, self.email, self.doctor, self.appointment]
        return [*fields, self.phone.removeprefix("+")]


def victim_subject(victim: Tenant) -> Subject:
    return Subject(
        patient=victim.only_patient_id,
        phone=victim.only_phone,
        email=victim.only_email,
        doctor=victim.only_doctor_id,
        appointment=victim.only_appointment_id,
    )


NOBODY = Subject(
    patient="pat-only-z1",
    phone="+40722000009",
    email="only-z1@example.ro",
    doctor="dr-only-z1",
    appointment="apt-only-z1",
)


def visible_secrets(victim: Tenant, sent: Any) -> list[str]:
    """The victim's secrets, less what the caller itself put in its request.

    A phone the caller sent in any form (``0722 000 002``) comes back in E.164: a
    phone secret counts as sent when its national digits are in the request.
    """
    request = json.dumps(sent, ensure_ascii=False).casefold()
    digits = "".join(ch for ch in request if ch.isdigit())
    return [
        s
        for s in victim.secrets
        if s and s.casefold() not in request and not (_is_phone(s) and s[-9:] in digits)
    ]


def _is_phone(value: str) -> bool:
    return value.removeprefix("+").isdigit() and len(value) >= 11


def no_leak(victim: Tenant, sent: Any, *answers: Any) -> None:
    for answer in answers:
        text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        found = leaked(text, visible_secrets(victim, sent))
        assert not found, f"{victim.clinic_id}'s data {found} in an answer: {text[:2000]}"


# --- 1. the twelve functions on the victim's own ids ------------------------------------------


@dataclass(frozen=True)
class IdProbe:
    """One function call about a subject, and what both answers must be."""

    function: str
    arguments: Callable[[Subject, Stack], dict[str, Any]]
    expect: Callable[[dict[str, Any]], bool]
    meaning: str


def _not_found(result: dict[str, Any]) -> bool:
    return result["success"] is False and result["error"]["code"] == "NOT_FOUND"


def _absent(result: dict[str, Any]) -> bool:
    return result["success"] is True and result["result"]["found"] is False


def _refused(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda result: result["success"] is False and result["error"]["code"] == code


def _day(stack: Stack) -> str:
    return stack.day.isoformat()


ID_PROBES: dict[str, IdProbe] = {
    "get_patient-by-id": IdProbe(
        "get_patient", lambda s, _: {"patientId": s.patient}, _absent, "found=false"
    ),
    "get_patient-by-phone": IdProbe(
        "get_patient", lambda s, _: {"phone": s.phone}, _absent, "found=false"
    ),
    "get_patient-by-local-phone": IdProbe(
        "get_patient",
        lambda s, _: {"phone": "0" + s.phone.removeprefix("+40")},
        _absent,
        "found=false",
    ),
    "get_patient-by-email": IdProbe(
        "get_patient", lambda s, _: {"email": s.email}, _absent, "found=false"
    ),
    "update_patient": IdProbe(
        "update_patient",
        lambda s, _: {"patientId": s.patient, "updates": {"notes": "probe", "tags": ["x"]}},
        _not_found,
        "NOT_FOUND",
    ),
    "schedule_appointment": IdProbe(
        "schedule_appointment",
        lambda s, st: {
            "patientId": s.patient,
            "serviceType": "cleaning",
            "preferredDate": _day(st),
        },
        _not_found,
        "NOT_FOUND",
    ),
    "get_available_slots-of-doctor": IdProbe(
        "get_available_slots",
        lambda s, st: {"startDate": _day(st), "endDate": _day(st), "doctorId": s.doctor},
        _not_found,
        "NOT_FOUND",
    ),
    "cancel_appointment": IdProbe(
        "cancel_appointment",
        lambda s, _: {"appointmentId": s.appointment, "reason": "probe"},
        _not_found,
        "NOT_FOUND",
    ),
    "send_whatsapp-to-phone": IdProbe(
        "send_whatsapp",
        lambda s, _: {"to": s.phone, "message": "probe"},
        _refused("CONSENT_REQUIRED"),
        "CONSENT_REQUIRED (the recipient is nobody the caller knows)",
    ),
    "send_whatsapp-to-patient": IdProbe(
        "send_whatsapp",
        lambda s, _: {"to": s.phone, "patientId": s.patient, "templateName": "recall_reminder"},
        lambda r: r["success"] is False,
        "refused like an unknown patient",
    ),
    "record_consent": IdProbe(
        "record_consent",
        lambda s, _: {
            "patientId": s.patient,
            "phone": s.phone,
            "consentType": "marketing_sms",
            "status": "withdrawn",
            "source": "probe",
        },
        _not_found,
        "NOT_FOUND",
    ),
    "check_consent-by-id": IdProbe(
        "check_consent", lambda s, _: {"patientId": s.patient}, _absent, "found=false"
    ),
    "check_consent-by-phone": IdProbe(
        "check_consent",
        lambda s, _: {"phone": s.phone, "consentTypes": ["data_processing"]},
        _absent,
        "found=false",
    ),
}


@pytest.mark.parametrize("probe", list(ID_PROBES.values()), ids=list(ID_PROBES))
async def test_a_victims_id_answers_exactly_like_an_unknown_id(
    stack: Stack, pair: tuple[Tenant, Tenant], probe: IdProbe
):
    attacker, victim = pair
    theirs, nobody = victim_subject(victim), NOBODY
    before = await stack.events(victim.clinic_id)
    sent = probe.arguments(theirs, stack)
    seen = await stack.call(attacker.admin_key, probe.function, sent)
    unknown = await stack.call(attacker.admin_key, probe.function, probe.arguments(nobody, stack))
    ids = theirs.ids + nobody.ids
    assert normalized(seen, ids) == normalized(unknown, ids), (
        "the victim's id is told apart from an unknown one",
        seen,
        unknown,
    )
    assert probe.expect(seen), f"expected {probe.meaning}: {seen}"
    no_leak(victim, sent, seen)
    assert await stack.events(victim.clinic_id) == before


async def test_score_lead_on_a_victims_lead_phone_creates_a_lead_like_a_new_phone(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    fresh = f"+4073100{uuid.uuid4().int % 10_000:04d}"
    before = await stack.events(victim.clinic_id)
    sent = {"phone": victim.only_lead_phone, "channel": "web"}
    seen = await stack.call(attacker.admin_key, "score_lead", sent)
    unknown = await stack.call(attacker.admin_key, "score_lead", {**sent, "phone": fresh})
    ids = [victim.only_lead_phone, fresh]
    assert normalized(seen, ids) == normalized(unknown, ids)
    assert seen["success"] and seen["result"]["created"] is True, seen
    no_leak(victim, sent, seen)
    assert await stack.events(victim.clinic_id) == before


async def test_get_workflow_status_of_a_victims_workflow_is_not_found(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    before = await stack.events(victim.clinic_id)
    assert len(victim.workflow_ids) == 3  # patient journey, message delivery, AI plan
    for workflow_id in victim.workflow_ids:
        kind = workflow_id.split(":")[1]
        for unknown in (
            f"{victim.clinic_id}:{kind}:{uuid.uuid4()}",
            f"{attacker.clinic_id}:{kind}:{uuid.uuid4()}",
        ):
            seen = await stack.call(
                attacker.admin_key, "get_workflow_status", {"taskId": workflow_id}
            )
            other = await stack.call(attacker.admin_key, "get_workflow_status", {"taskId": unknown})
            ids = [workflow_id, unknown]
            assert normalized(seen, ids) == normalized(other, ids), (seen, other)
            assert _not_found(seen), seen
            no_leak(victim, {"taskId": workflow_id}, seen)
        # the owner does see it: the probe is about a real workflow
        own = await stack.call(victim.admin_key, "get_workflow_status", {"taskId": workflow_id})
        assert own["success"], own
    assert await stack.events(victim.clinic_id) == before


async def test_trigger_workflow_about_a_victims_patient_runs_like_for_nobody(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    theirs, nobody = victim_subject(victim), NOBODY
    before = await stack.events(victim.clinic_id)

    def payload(s: Subject) -> dict[str, Any]:
        return {
            "workflow": "booking-agent",
            "payload": {
                "patientId": s.patient,
                "serviceType": "cleaning",
                "preferredDate": _day(stack),
            },
        }

    started = [
        await stack.call(attacker.admin_key, "trigger_workflow", payload(s))
        for s in (theirs, nobody)
    ]
    ids = theirs.ids + nobody.ids
    assert normalized(started[0], ids) == normalized(started[1], ids), started
    assert all(s["success"] for s in started), started
    ended = [
        await stack.until_workflow(
            attacker.admin_key, s["result"]["workflowId"], lambda st: st["status"] != "running"
        )
        for s in started
    ]
    assert normalized(ended[0], ids) == normalized(ended[1], ids), ended
    assert ended[0]["status"] == "failed", ended[0]  # no such patient for the caller
    assert ended[0]["error"]["code"] == "NOT_FOUND", ended[0]
    no_leak(victim, payload(theirs), *started, *ended)
    await stack.settle(attacker.clinic_id)
    assert await stack.events(victim.clinic_id) == before


# --- 2. identical ids reach only the caller's own records -------------------------------------


async def test_identical_ids_read_only_the_callers_records(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    reads = [
        ("get_patient", {"patientId": SHARED.patient_id}),
        ("get_patient", {"phone": SHARED.phone}),
        ("get_patient", {"phone": "0721 234 567"}),
        ("get_patient", {"email": SHARED.email}),
        ("check_consent", {"patientId": SHARED.patient_id}),
        ("check_consent", {"phone": SHARED.phone}),
        ("get_available_slots", {"startDate": _day(stack), "endDate": _day(stack)}),
        (
            "get_available_slots",
            {"startDate": _day(stack), "endDate": _day(stack), "doctorId": "dr-1"},
        ),
    ]
    for function, arguments in reads:
        # the victim asks first: a cache keyed without the clinic would hand its answer over
        theirs = await stack.call(victim.admin_key, function, arguments)
        assert theirs["success"], theirs
        mine = await stack.call(attacker.admin_key, function, arguments)
        assert mine["success"], mine
        no_leak(victim, arguments, mine)
        if function == "get_patient":
            assert mine["result"]["patient"]["firstName"] == attacker.first_name, mine
            assert theirs["result"]["patient"]["firstName"] == victim.first_name, theirs
        if function == "check_consent":
            sources = {c["source"] for c in mine["result"]["consents"] if c["source"]}
            assert sources == {f"{attacker.marker.lower()}_form"}, mine
        if function == "get_available_slots" and "doctorId" not in arguments:
            doctors = {s["doctorId"] for s in mine["result"]["slots"]}
            assert doctors == {SHARED.doctor_id, attacker.only_doctor_id}, doctors


async def test_identical_ids_change_only_the_callers_records(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    index = 1 if attacker.letter == "a" else 2
    appointment = SHARED.appointment_ids[index]
    before = await stack.events(victim.clinic_id)
    # reads at a position: the query cache (5 s) must not answer with an older state
    fresh = {"X-Min-Position": str(before.last_position)}
    victim_patient = await stack.call(
        victim.admin_key, "get_patient", {"patientId": SHARED.patient_id}, **fresh
    )
    victim_consent = await stack.call(
        victim.admin_key, "check_consent", {"patientId": SHARED.patient_id}, **fresh
    )
    note = f"{attacker.marker} changed this"
    writes = [
        ("update_patient", {"patientId": SHARED.patient_id, "updates": {"notes": note}}),
        (
            "cancel_appointment",
            {"appointmentId": appointment, "reason": "moved", "notifyPatient": False},
        ),
        (
            "record_consent",
            {
                "patientId": SHARED.patient_id,
                "phone": SHARED.phone,
                "consentType": "marketing_whatsapp",
                "status": "withdrawn",
                "source": "probe",
            },
        ),
        ("score_lead", {"phone": SHARED.lead_phone, "channel": "whatsapp"}),
        (
            "schedule_appointment",
            {
                "patientId": SHARED.patient_id,
                "serviceType": "checkup",
                "preferredDate": _day(stack),
            },
        ),
        ("send_whatsapp", {"to": SHARED.phone, "message": f"{attacker.marker} says hello"}),
    ]
    results = {}
    for function, arguments in writes:
        result = await stack.call(attacker.admin_key, function, arguments)
        assert result["success"], result
        no_leak(victim, arguments, result)
        results[function] = result
    assert results["update_patient"]["result"]["changedFields"] == ["notes"]
    assert results["cancel_appointment"]["result"]["status"] == "cancelled"
    assert results["score_lead"]["result"]["created"] is False  # the caller's own lead
    assert results["send_whatsapp"]["result"]["patientId"] == SHARED.patient_id
    await stack.settle(attacker.clinic_id)  # the booking and the delivery ran to rest

    assert await stack.events(victim.clinic_id) == before
    # read after every write of the caller reached the read models
    latest = {"X-Min-Position": str((await stack.events(attacker.clinic_id)).last_position)}
    after = await stack.call(
        victim.admin_key, "get_patient", {"patientId": SHARED.patient_id}, **latest
    )
    assert normalized(after) == normalized(victim_patient)
    consent = await stack.call(
        victim.admin_key, "check_consent", {"patientId": SHARED.patient_id}, **latest
    )
    assert normalized(consent) == normalized(victim_consent)
    cancel_again = await stack.call(
        victim.admin_key,
        "cancel_appointment",
        {"appointmentId": appointment, "notifyPatient": False},
    )
    # the victim's appointment was still scheduled: the victim can cancel it now
    assert cancel_again["success"] and cancel_again["result"]["status"] == "cancelled", cancel_again
    await stack.settle(victim.clinic_id)


async def test_lead_analytics_count_only_the_callers_leads(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    today = datetime.now(UTC).date()
    window = {
        "startDate": (today - timedelta(days=1)).isoformat(),
        "endDate": (today + timedelta(days=1)).isoformat(),
    }
    grouped = [{**window, "groupBy": g} for g in ("channel", "classification", "day")]
    # reads at a position: the query cache (5 s) must not answer with an older state
    fresh = {"X-Min-Position": str((await stack.events(attacker.clinic_id)).last_position)}
    before = [
        await stack.call(attacker.admin_key, "get_lead_analytics", a, **fresh) for a in grouped
    ]
    new_lead = await stack.call(
        victim.admin_key,
        "score_lead",
        {
            "phone": f"+4073200{uuid.uuid4().int % 10_000:04d}",
            "channel": "referral",
            "messages": [{"role": "user", "content": f"All-on-4, cât costă? {victim.marker}"}],
        },
    )
    assert new_lead["success"] and new_lead["result"]["classification"] == "HOT", new_lead
    seen_lead = {"X-Min-Position": str(new_lead["position"])}  # B's lead is in the read models
    after = [
        await stack.call(attacker.admin_key, "get_lead_analytics", a, **seen_lead) for a in grouped
    ]
    assert [normalized(a) for a in after] == [normalized(b) for b in before]
    created = await stack.pool.fetchval(
        "SELECT count(*) FROM events WHERE clinic_id = $1 AND event_type = 'LeadCreated'",
        attacker.clinic_id,
    )
    assert after[0]["result"]["totals"]["leads"] == created
    no_leak(victim, grouped, *after)


# --- 3. natural and workflow requests ---------------------------------------------------------


async def _natural(stack: Stack, key: str, query: str) -> dict[str, Any]:
    response = await stack.execute(key, {"type": "natural", "query": query})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if body.get("workflowId"):
        body["status"] = await stack.until_workflow(
            key, body["workflowId"], lambda s: s["status"] != "running"
        )
    return body


NATURAL = {
    "find-patient": ("Caută pacientul {patient}", "get_patient"),
    "cancel": ("Anulează programarea {appointment}", "cancel_appointment"),
    "consent-by-phone": (
        "Are pacientul {local_phone} acord pentru marketing pe WhatsApp?",
        "check_consent",
    ),
    "two-step-plan": (
        "Caută pacientul {patient} și verifică acordul pacientului {patient}",
        "get_patient",
    ),
}


def _query(template: str, s: Subject) -> str:
    local = "0" + s.phone.removeprefix("+40")
    return template.format(patient=s.patient, appointment=s.appointment, local_phone=local)


@pytest.mark.parametrize("name", list(NATURAL))
async def test_natural_requests_about_a_victims_ids_answer_like_unknown_ids(
    stack: Stack, pair: tuple[Tenant, Tenant], name: str
):
    attacker, victim = pair
    template, first_function = NATURAL[name]
    theirs, nobody = victim_subject(victim), NOBODY
    local_ids = ["0" + s.phone.removeprefix("+40") for s in (theirs, nobody)]
    before = await stack.events(victim.clinic_id)
    seen = await _natural(stack, attacker.admin_key, _query(template, theirs))
    unknown = await _natural(stack, attacker.admin_key, _query(template, nobody))
    ids = theirs.ids + nobody.ids + local_ids
    assert seen["intent"]["functions"][0] == first_function, seen  # the request was understood
    assert normalized(seen, ids) == normalized(unknown, ids), (seen, unknown)
    text = json.dumps(seen)
    assert "NOT_FOUND" in text or '"found": false' in text, seen
    no_leak(victim, _query(template, theirs), seen)
    await stack.settle(attacker.clinic_id)
    assert await stack.events(victim.clinic_id) == before


async def test_natural_request_with_an_identical_id_finds_the_callers_patient(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    answer = await _natural(stack, attacker.admin_key, f"Caută pacientul {SHARED.patient_id}")
    (result,) = answer["results"]
    assert result["result"]["patient"]["firstName"] == attacker.first_name, answer
    no_leak(victim, SHARED.patient_id, answer)


def _plan(s: Subject, marker: str) -> dict[str, Any]:
    return {
        "type": "workflow",
        "steps": [
            {"stepId": "find", "function": "get_patient", "arguments": {"patientId": s.patient}},
            {
                "stepId": "note",
                "function": "update_patient",
                "arguments": {"patientId": s.patient, "updates": {"notes": f"plan {marker}"}},
                "dependsOn": ["find"],
            },
        ],
    }


async def _run_plan(stack: Stack, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.execute(key, body)
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["success"] and started["workflowId"], started
    return await stack.until_workflow(
        key, started["workflowId"], lambda s: s["status"] != "running"
    )


async def test_workflow_requests_on_a_victims_ids_run_like_on_unknown_ids(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    theirs, nobody = victim_subject(victim), NOBODY
    before = await stack.events(victim.clinic_id)
    seen = await _run_plan(stack, attacker.admin_key, _plan(theirs, attacker.marker))
    unknown = await _run_plan(stack, attacker.admin_key, _plan(nobody, attacker.marker))
    ids = theirs.ids + nobody.ids
    assert normalized(seen, ids) == normalized(unknown, ids), (seen, unknown)
    steps = {s["stepId"]: s for s in seen["steps"]}
    assert steps["find"]["result"]["found"] is False, seen
    assert "NOT_FOUND" in json.dumps(steps["note"]), seen
    no_leak(victim, _plan(theirs, attacker.marker), seen)
    await stack.settle(attacker.clinic_id)
    assert await stack.events(victim.clinic_id) == before


async def test_workflow_requests_on_identical_ids_change_only_the_callers_records(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    shared = Subject(SHARED.patient_id, SHARED.phone, SHARED.email, "dr-1", "apt-1")
    before = await stack.events(victim.clinic_id)
    status = await _run_plan(stack, attacker.admin_key, _plan(shared, attacker.marker))
    assert status["status"] == "completed", status
    steps = {s["stepId"]: s for s in status["steps"]}
    assert steps["find"]["result"]["patient"]["firstName"] == attacker.first_name, status
    no_leak(victim, _plan(shared, attacker.marker), status)
    await stack.settle(attacker.clinic_id)
    assert await stack.events(victim.clinic_id) == before
    theirs = await stack.call(victim.admin_key, "get_patient", {"patientId": SHARED.patient_id})
    assert attacker.marker not in json.dumps(theirs), theirs


# --- 4. MCP -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mcp_session(stack: Stack, key: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        Client(streamable_http_client(f"{stack.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


def _tool_answer(result: Any) -> dict[str, Any]:
    if result.is_error:
        return {"error": json.loads(result.content[0].text)}
    return {"result": result.structured_content}


async def test_mcp_tools_on_a_victims_ids_answer_like_unknown_ids(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    theirs, nobody = victim_subject(victim), NOBODY
    before = await stack.events(victim.clinic_id)
    calls: list[tuple[str, Callable[[Subject], dict[str, Any]], str]] = [
        ("get_patient", lambda s: {"patientId": s.patient}, "absent"),
        ("get_patient", lambda s: {"phone": s.phone}, "absent"),
        ("update_patient", lambda s: {"patientId": s.patient, "updates": {"notes": "mcp"}}, "404"),
        ("cancel_appointment", lambda s: {"appointmentId": s.appointment}, "404"),
        ("check_consent", lambda s: {"patientId": s.patient}, "absent"),
    ]
    workflow_id = victim.workflow_ids[0]
    unknown_workflow = f"{victim.clinic_id}:patient-journey:{uuid.uuid4()}"
    async with mcp_session(stack, attacker.admin_key) as mcp:
        for tool, arguments, expected in calls:
            seen = _tool_answer(await mcp.call_tool(tool, arguments(theirs)))
            unknown = _tool_answer(await mcp.call_tool(tool, arguments(nobody)))
            ids = theirs.ids + nobody.ids
            assert normalized(seen, ids) == normalized(unknown, ids), (tool, seen, unknown)
            if expected == "absent":
                assert seen["result"]["found"] is False, seen
            else:
                assert seen["error"]["code"] == "NOT_FOUND", seen
            no_leak(victim, arguments(theirs), seen)
        status = _tool_answer(await mcp.call_tool("get_workflow_status", {"taskId": workflow_id}))
        unknown = _tool_answer(
            await mcp.call_tool("get_workflow_status", {"taskId": unknown_workflow})
        )
        ids = [workflow_id, unknown_workflow]
        assert normalized(status, ids) == normalized(unknown, ids), (status, unknown)
        assert status["error"]["code"] == "NOT_FOUND", status
        own = _tool_answer(await mcp.call_tool("get_patient", {"patientId": SHARED.patient_id}))
        assert own["result"]["patient"]["firstName"] == attacker.first_name, own
        no_leak(victim, SHARED.patient_id, own)
    assert await stack.events(victim.clinic_id) == before


# --- 5. GDPR admin routes ---------------------------------------------------------------------


async def _same_http_answer(
    http: httpx.AsyncClient, method: str, theirs: str, nobody: str, ids: list[str], **kw: Any
) -> httpx.Response:
    seen = await http.request(method, theirs, **kw)
    unknown = await http.request(method, nobody, **kw)
    assert seen.status_code == unknown.status_code, (seen.text, unknown.text)
    assert seen.headers.get("content-type") == unknown.headers.get("content-type")
    assert normalized(seen.json(), ids) == normalized(unknown.json(), ids), (
        seen.text,
        unknown.text,
    )
    return seen


async def test_gdpr_export_and_erase_of_a_victims_patient_are_not_found(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    theirs, nobody = victim.only_patient_id, NOBODY.patient
    before = await stack.events(victim.clinic_id)
    async with stack.client(attacker.admin_key) as http:
        for method, suffix, kw in (
            ("GET", "export", {}),
            ("POST", "erase", {"json": {"reason": "probe"}}),
        ):
            seen = await _same_http_answer(
                http,
                method,
                f"/admin/patients/{theirs}/{suffix}",
                f"/admin/patients/{nobody}/{suffix}",
                [theirs, nobody],
                **kw,
            )
            assert_problem(seen, 404, "NOT_FOUND")
            no_leak(victim, theirs, seen.text)
    assert await stack.events(victim.clinic_id) == before
    async with stack.client(victim.admin_key) as http:
        still = await http.get(f"/admin/patients/{theirs}/export")
    assert still.status_code == 200 and victim.marker in still.text


async def test_gdpr_on_identical_ids_exports_and_erases_only_the_callers_patient(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    erased = SHARED.erase_patient_ids[0 if attacker.letter == "a" else 1]
    before = await stack.events(victim.clinic_id)
    async with stack.client(attacker.admin_key) as http:
        export = await http.get(f"/admin/patients/{SHARED.patient_id}/export")
        assert export.status_code == 200, export.text
        assert attacker.marker in export.text
        no_leak(victim, SHARED.patient_id, export.text)
        erase = await http.post(f"/admin/patients/{erased}/erase", json={"reason": "request"})
        assert erase.status_code == 200, erase.text
        no_leak(victim, erased, erase.text)
        gone = await stack.call(attacker.admin_key, "get_patient", {"patientId": erased})
    assert gone["success"], gone
    assert attacker.marker not in json.dumps(gone), gone  # the caller's copy is erased
    await stack.settle(attacker.clinic_id)
    assert await stack.events(victim.clinic_id) == before
    async with stack.client(victim.admin_key) as http:
        intact = await http.get(f"/admin/patients/{erased}/export")
    assert intact.status_code == 200, intact.text
    assert victim.first_name in intact.text  # the victim's patient of the same id is whole


# --- 6. traces, sandbox outbox, keys, idempotency ---------------------------------------------


async def test_diagnostics_traces_never_show_another_clinics_traces(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    theirs_corr = f"corr-{victim.marker}-{uuid.uuid4().hex[:8]}"
    mine_corr = f"corr-{attacker.marker}-{uuid.uuid4().hex[:8]}"
    body = call_body("get_patient", {"patientId": SHARED.patient_id})
    theirs = await stack.execute(victim.admin_key, body, **{"X-Correlation-Id": theirs_corr})
    mine = await stack.execute(attacker.admin_key, body, **{"X-Correlation-Id": mine_corr})
    assert theirs.status_code == mine.status_code == 200
    their_trace = theirs.headers["x-trace-id"]
    victim_traces = {their_trace, *victim.trace_ids}
    unknown_trace = uuid.uuid4().hex
    async with stack.client(attacker.admin_key) as http:
        own = (await http.get("/diagnostics/traces", params={"correlationId": mine_corr})).json()
        listed = await http.get("/diagnostics/traces", params={"limit": 200})
        by_corr = await http.get("/diagnostics/traces", params={"correlationId": theirs_corr})
        fetched = await http.get(f"/diagnostics/traces/{their_trace}")
        unknown = await http.get(f"/diagnostics/traces/{unknown_trace}")
    assert own["count"] == 1, own  # the caller does find its own trace
    assert listed.status_code == by_corr.status_code == 200
    assert unknown.status_code == 404
    problems = []
    shown = {t["traceId"] for t in listed.json()["traces"]} & victim_traces
    if shown:
        problems.append(f"GET /diagnostics/traces lists {victim.clinic_id}'s traces {shown}")
    if by_corr.json()["count"] != 0:
        problems.append(
            f"GET /diagnostics/traces?correlationId={theirs_corr} finds {victim.clinic_id}'s "
            f"trace: {by_corr.text[:300]}"
        )
    ids = [their_trace, unknown_trace]
    if fetched.status_code != 404 or normalized(fetched.json(), ids) != normalized(
        unknown.json(), ids
    ):
        problems.append(
            f"GET /diagnostics/traces/{{{victim.clinic_id}'s trace}} answers "
            f"{fetched.status_code}, not the 404 of an unknown trace: {fetched.text[:300]}"
        )
    for name, answer, sent in (
        ("list", listed, {}),
        ("by correlation id", by_corr, theirs_corr),
        ("by id", fetched, their_trace),
    ):
        found = leaked(answer.text, visible_secrets(victim, sent))
        if found:
            problems.append(f"the {name} answer holds {victim.clinic_id}'s data {found}")
    assert not problems, "\n".join(problems)


async def test_sandbox_outbox_lists_only_the_callers_messages(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    async with stack.client(attacker.admin_key) as http:
        everything = await http.get("/sandbox/whatsapp/messages", params={"limit": 200})
        to_shared = await http.get(
            "/sandbox/whatsapp/messages", params={"limit": 200, "to": SHARED.phone}
        )
    for answer in (everything, to_shared):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["clinicId"] == attacker.clinic_id
        keys = {m["idempotencyKey"] for m in body["messages"]}
        assert set(attacker.message_ids) <= keys, body  # the caller sees its own
        assert not keys & set(victim.message_ids), body
        no_leak(victim, {}, answer.text)


async def test_api_keys_of_another_clinic_can_be_neither_listed_nor_revoked(
    stack: Stack, pair: tuple[Tenant, Tenant]
):
    attacker, victim = pair
    unknown = "key_" + uuid.uuid4().hex[:16]
    async with stack.client(attacker.admin_key) as http:
        listed = await http.get("/ai/keys", params={"include_revoked": True})
        assert listed.status_code == 200, listed.text
        assert {k["clinicId"] for k in listed.json()["keys"]} == {attacker.clinic_id}
        no_leak(victim, {}, listed.text)
        for key_id in (victim.read_key_id, victim.admin_key_id):
            seen = await _same_http_answer(
                http, "DELETE", f"/ai/keys/{key_id}", f"/ai/keys/{unknown}", [key_id, unknown]
            )
            assert_problem(seen, 404, "NOT_FOUND")
    revoked = await stack.pool.fetchval(
        "SELECT count(*) FROM api_keys WHERE clinic_id = $1 AND revoked_at IS NOT NULL "
        "AND key_id = ANY($2::text[])",
        victim.clinic_id,
        [victim.read_key_id, victim.admin_key_id],
    )
    assert revoked == 0
    async with stack.client(victim.read_key) as http:
        assert (await http.get("/ai/categories")).status_code == 200


async def test_idempotency_keys_are_per_clinic(stack: Stack, pair: tuple[Tenant, Tenant]):
    attacker, victim = pair
    key = f"same-key-{uuid.uuid4().hex[:8]}"
    body = call_body("get_patient", {"patientId": SHARED.patient_id})
    first = await stack.execute(victim.admin_key, body, **{"Idempotency-Key": key})
    second = await stack.execute(attacker.admin_key, body, **{"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert "idempotent-replayed" not in second.headers, "another clinic's answer was replayed"
    (result,) = second.json()["results"]
    assert result["result"]["patient"]["firstName"] == attacker.first_name
    no_leak(victim, body, second.text)


# --- 7. scopes --------------------------------------------------------------------------------


def test_the_gateway_has_exactly_the_twelve_functions():
    assert set(REGISTRY.names()) == TWELVE


def _write_calls(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        "update_patient": {"patientId": SHARED.patient_id, "updates": {"notes": "read-only try"}},
        "schedule_appointment": {
            "patientId": SHARED.patient_id,
            "serviceType": "cleaning",
            "preferredDate": _day(stack),
        },
        "cancel_appointment": {"appointmentId": SHARED.appointment_ids[0]},
        "send_whatsapp": {"to": SHARED.phone, "message": "read-only try"},
        "record_consent": {
            "patientId": SHARED.patient_id,
            "phone": SHARED.phone,
            "consentType": "data_processing",
            "status": "withdrawn",
            "source": "read-only try",
        },
        "score_lead": {"phone": "+40731000077", "channel": "web"},
        "trigger_workflow": {"workflow": "patient-journey", "payload": {"patientId": "pat-1"}},
    }


WRITES = sorted(s.name for s in REGISTRY if not s.read_only)


def test_every_write_outbound_and_destructive_function_is_probed():
    assert set(WRITES) == {
        "update_patient",
        "schedule_appointment",
        "cancel_appointment",
        "send_whatsapp",
        "record_consent",
        "score_lead",
        "trigger_workflow",
    }


@pytest.mark.parametrize("clinic", ["clinic-a", "clinic-b"])
@pytest.mark.parametrize("function", WRITES)
async def test_a_read_only_key_is_refused_every_write_function(
    stack: Stack, clinic: str, function: str
):
    tenant = stack.tenant(clinic)
    spec = REGISTRY.get(function)
    expected = sorted(set(spec.scopes) - {"read"})
    before = await stack.events(clinic)
    response = await stack.execute(
        tenant.read_key, call_body(function, _write_calls(stack)[function])
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["success"] is False and result["error"]["code"] == "FORBIDDEN", result
    assert result["error"]["details"]["missing"] == expected, result
    assert all(s in result["error"]["message"] for s in expected), result
    denied = await stack.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE request_id = $1 AND function = $2 "
        "AND decision = 'denied' AND key_id = $3",
        response.json()["requestId"],
        function,
        tenant.read_key_id,
    )
    assert denied == 1
    await asyncio.sleep(0.3)  # anything started would have written by now
    assert await stack.events(clinic) == before


async def test_a_read_only_key_is_refused_writes_on_every_other_surface(stack: Stack):
    tenant = stack.tenant("clinic-a")
    before = await stack.events(tenant.clinic_id)
    natural = await stack.execute(
        tenant.read_key,
        {"type": "natural", "query": f"Anulează programarea {SHARED.appointment_ids[0]}"},
    )
    assert natural.status_code == 200, natural.text
    (result,) = natural.json()["results"]
    assert result["function"] == "cancel_appointment" and result["executed"] is False
    assert result["error"]["code"] == "FORBIDDEN" and result["error"]["details"]["missing"] == [
        "write"
    ]

    plan = await stack.execute(tenant.read_key, _plan(NOBODY, "read-only"))
    assert plan.status_code == 200, plan.text
    assert "workflowId" not in plan.json(), plan.text  # nothing started
    refused = {r["callId"]: r for r in plan.json()["results"]}
    assert refused["note"]["error"]["code"] == "FORBIDDEN", refused
    assert refused["note"]["error"]["details"]["missing"] == ["write"], refused

    async with mcp_session(stack, tenant.read_key) as mcp:
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert tools == {s.name for s in REGISTRY if s.read_only}
        for function, arguments in _write_calls(stack).items():
            answer = _tool_answer(await mcp.call_tool(function, arguments))
            assert answer["error"]["code"] == "FORBIDDEN", (function, answer)

    async with stack.client(tenant.read_key) as http:
        for method, path, kw, scope in (
            ("GET", f"/admin/patients/{SHARED.patient_id}/export", {}, "admin"),
            ("POST", f"/admin/patients/{SHARED.patient_id}/erase", {"json": {}}, "admin"),
            ("GET", "/ai/keys", {}, "admin"),
            ("POST", "/ai/keys", {"json": {"scopes": ["admin"]}}, "admin"),
            ("DELETE", f"/ai/keys/{tenant.admin_key_id}", {}, "admin"),
            ("GET", "/sandbox/whatsapp/messages", {}, "messaging"),
        ):
            response = await http.request(method, path, **kw)
            body = assert_problem(response, 403, "FORBIDDEN")
            assert body["missing"] == [scope] and scope in body["detail"], (path, body)
    await asyncio.sleep(0.3)
    assert await stack.events(tenant.clinic_id) == before
    keys = await stack.pool.fetchval(
        "SELECT count(*) FROM api_keys WHERE clinic_id = $1 AND revoked_at IS NULL",
        tenant.clinic_id,
    )
    assert keys >= 2
    async with stack.client(tenant.admin_key) as http:
        assert (await http.get("/ai/keys")).status_code == 200  # the admin key still works


# --- 8. authentication ------------------------------------------------------------------------

PUBLIC = {
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/diagnostics/quick"),
    ("GET", "/diagnostics/health"),
}
"""Probes, open on purpose (Kubernetes and Prometheus call them without a key)."""


def _concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")


SIGNED = "/webhooks/"
"""WhatsApp webhooks: authenticated by the provider's HMAC signature, not by an API key."""
OWN_AUTH = "/codec/"
"""The Temporal codec: an admin key OR the codec token (the Web UI sends no key)."""


async def _operations(stack: Stack) -> list[tuple[str, str]]:
    async with stack.client() as http:
        document = (await http.get("/openapi.json")).json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ]


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"X-API-Key": "mc_" + "x" * 40}, id="unknown-key"),
        pytest.param({"Authorization": "Bearer mc_" + "y" * 40}, id="unknown-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="wrong-scheme"),
    ],
)
async def test_without_a_valid_key_every_protected_route_answers_401(
    stack: Stack, credentials: dict[str, str]
):
    operations = [
        (m, p)
        for m, p in await _operations(stack)
        if (m, p) not in PUBLIC and not p.startswith(SIGNED)
    ]
    assert len(operations) >= 15, operations
    failures = []
    async with stack.client(**credentials) as http:
        for method, path in [*operations, ("POST", "/mcp")]:
            kw: dict[str, Any] = {} if method in ("GET", "DELETE") else {"json": {}}
            response = await http.request(method, _concrete(path), **kw)
            try:
                if path.startswith(OWN_AUTH):  # its answers' shape: see test_fuzz_openapi
                    assert response.status_code == 401, response.text
                    continue
                assert_problem(response, 401, "UNAUTHENTICATED")
                assert response.headers.get("www-authenticate", "").startswith("Bearer")
            except AssertionError as exc:
                failures.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
                failures.append(f"    {exc}")
    assert not failures, "\n".join(failures)


async def test_an_unsigned_webhook_is_refused_with_401(stack: Stack):
    signed = [(m, p) for m, p in await _operations(stack) if p.startswith(SIGNED) and m == "POST"]
    assert signed, "no webhook route in the OpenAPI document"
    before = {c: await stack.events(c) for c in stack.tenants}
    async with stack.client(stack.tenant("clinic-a").admin_key) as http:  # a key is no signature
        for method, path in signed:
            url = path.replace("{clinic_id}", "clinic-a")
            response = await http.request(method, url, json={"object": "whatsapp_business_account"})
            assert_problem(response, 401, "UNAUTHENTICATED")
    assert {c: await stack.events(c) for c in stack.tenants} == before


async def test_a_key_revoked_through_the_api_is_refused_at_once(stack: Stack):
    admin = stack.tenant("clinic-a").admin_key
    async with stack.client(admin) as http:
        for _ in range(5):
            created = await http.post("/ai/keys", json={"name": "short-lived", "scopes": ["read"]})
            assert created.status_code == 201, created.text
            key, key_id = created.json()["key"], created.json()["keyId"]
            async with stack.client(key) as mine:
                assert (await mine.get("/ai/categories")).status_code == 200
                assert (await mine.get("/ai/categories")).status_code == 200  # cached now
                assert (await http.delete(f"/ai/keys/{key_id}")).status_code == 204
                refused = await mine.get("/ai/categories")
                assert_problem(refused, 401, "UNAUTHENTICATED")
                execute = await mine.post(
                    "/ai/execute", json=call_body("get_patient", {"patientId": "pat-1"})
                )
                assert_problem(execute, 401, "UNAUTHENTICATED")


REVOKED_ELSEWHERE_WITHIN_S = 0.5
"""``adapters.api_keys``: a replica drops its cache when the NOTIFY arrives ("milliseconds").
Strictly "at once" does not hold across processes: under load a request can be served
from the cache before the notification is handled (seen in 1 of 10 attempts while the
fuzz module ran); that gap is reported to the owner, this bound is what is promised."""


async def test_a_key_revoked_by_another_process_is_refused_within_milliseconds(stack: Stack):
    """Like ``medicalcor keys revoke``: its own pool, the API learns it by NOTIFY."""
    for attempt in range(10):
        key = await stack.new_key("clinic-b", ["read"], f"revoke-{attempt}")
        key_id = await stack.pool.fetchval(
            "SELECT key_id FROM api_keys WHERE name = $1", f"revoke-{attempt}"
        )
        async with stack.client(key) as http:
            assert (await http.get("/ai/categories")).status_code == 200
            assert (await http.get("/ai/categories")).status_code == 200  # cached now
            assert await keys_revoke(stack.settings, stack.settings.database_url or "", key_id)
            revoked = time.monotonic()
            while (refused := await http.get("/ai/categories")).status_code == 200:
                waited = time.monotonic() - revoked
                assert waited < REVOKED_ELSEWHERE_WITHIN_S, f"still accepted after {waited:.2f}s"
                await asyncio.sleep(0.01)
            assert_problem(refused, 401, "UNAUTHENTICATED")


# --- 9. availability: one clinic's input never stalls another clinic's reads ------------------
# Keep this test LAST in the module: while the bug it guards against exists, clinic A's
# input poisons the projector and every later read-after-write of this stack would wait.


@pytest.mark.parametrize(
    "updates",
    [
        pytest.param({"tags": ["a\x00b"]}, id="nul-in-tags"),
        pytest.param({"notes": "note\x00"}, id="nul-in-notes"),
    ],
)
async def test_one_clinics_input_never_stalls_another_clinics_read_models(
    stack: Stack, updates: dict[str, Any]
):
    attacker, victim = stack.tenant("clinic-a"), stack.tenant("clinic-b")
    sent = await stack.call(
        attacker.admin_key, "update_patient", {"patientId": SHARED.patient_id, "updates": updates}
    )
    # accepted or refused as invalid: either is fine, as long as the system digests it
    assert sent["success"] or sent["error"]["code"] == "INVALID_ARGUMENTS", sent
    note = f"fresh {uuid.uuid4().hex[:8]}"
    wrote = await stack.call(
        victim.admin_key,
        "update_patient",
        {"patientId": SHARED.patient_id, "updates": {"notes": note}},
    )
    assert wrote["success"], wrote
    response = await stack.execute(
        victim.admin_key,
        call_body("get_patient", {"patientId": SHARED.patient_id}),
        **{"X-Min-Position": str(wrote["position"])},
    )
    (read,) = response.json()["results"]
    assert read["success"], (
        f"after clinic A sent {updates!r}, clinic B cannot read its own write: {read['error']}"
    )
    assert read["result"]["patient"]["notes"] == note
