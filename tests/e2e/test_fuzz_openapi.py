"""Schemathesis over the running system's OpenAPI documents (``stack`` fixture).

Documents: the application's ``/openapi.json`` (every route) and the gateway's own
``/ai/schema`` (the ``/ai`` routes with every function's call spelled out as a
variant of ``Call``). Each is fuzzed twice: with clinic A's admin key, and with no
key at all. Every operation gets positive and negative cases (schemathesis'
generation modes), ``MAX_EXAMPLES`` of each, derandomised (a fixed seed: CI runs the
same cases every time), without shrinking (the run is bounded).

Every response must:

* not be a server error (``not_a_server_error``);
* when it is an error (4xx), be RFC 9457 problem details: ``application/problem+json``
  with ``type``, ``title``, ``status`` (= the HTTP status), ``detail`` and ``code``;
* conform to the response schema the document declares for it
  (``response_schema_conformance``);
* hold none of clinic B's data: B is seeded with marker strings (names, notes, clinic
  name, lead messages, message texts), its own ids, keys, workflow and trace ids, and
  keeps making requests while A is fuzzed, so a listing that crossed the tenant
  boundary would show them.

Schemathesis is synchronous (``requests``): the cases run in a worker thread while
the event loop keeps serving the in-process app. The number of cases is printed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from adapters.projections import PROJECTION_NAMES
from adapters.projections.runner import report_lag
from tests.e2e.stack_support import PROBLEM_FIELDS, PROBLEM_JSON, call_body, leaked
from tests.fixtures.stack import SHARED, Stack, Tenant

MAX_EXAMPLES = 12
"""Cases per operation and generation mode (positive, negative)."""
MORE_EXAMPLES = {"POST /ai/execute": 60}
"""Where the attack surface is widest: every function's arguments behind one route."""
REQUEST_TIMEOUT_S = 30.0
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass(frozen=True)
class Finding:
    """One distinct failure: where, which check, and an example request and answer."""

    operation: str
    check: str
    status: int
    request: str
    response: str

    def describe(self) -> str:
        return (
            f"{self.operation} -> {self.status} [{self.check}]\n"
            f"    request:  {self.request}\n    response: {self.response}"
        )


@dataclass
class Run:
    """What one fuzz run did: cases per operation, statuses, findings (first per kind)."""

    label: str
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[tuple[str, str, int], Finding] = field(default_factory=dict)
    without_negative: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, finding: Finding) -> None:
        with self.lock:
            self.findings.setdefault((finding.operation, finding.check, finding.status), finding)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        per_status = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"fuzz {self.label}: {self.total} cases over {len(self.cases)} operations "
            f"({MAX_EXAMPLES} per operation and mode, modes {[m.value for m in MODES]}); "
            f"statuses {{{per_status}}}; {len(self.findings)} distinct findings; "
            f"{len(self.without_negative)} operations have no negative case"
        )


# --- checks -----------------------------------------------------------------------------------


def _request_of(response: schemathesis.Response) -> str:
    request = response.request
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = f"{request.method} {request.url}"
    if body:
        text += f" body={str(body)[:400]}"
    return text


def header(response: schemathesis.Response, name: str) -> str:
    values = response.headers.get(name.lower()) or [""]
    return str(values[0])


def problem_shape(response: schemathesis.Response) -> str | None:
    """Why an error response is not problem details, or None."""
    if response.status_code < 400:
        return None
    media = header(response, "content-type").split(";")[0].strip()
    if media != PROBLEM_JSON:
        return f"content-type {media!r}, not {PROBLEM_JSON}"
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict):
        return "body is not a JSON object"
    missing = [f for f in PROBLEM_FIELDS if f not in body]
    if missing:
        return f"no {missing}"
    if body["status"] != response.status_code:
        return f"status member {body['status']} != HTTP {response.status_code}"
    if not all(isinstance(body[f], str) and body[f] for f in ("type", "title", "detail", "code")):
        return "type/title/detail/code must be non-empty strings"
    return None


def unexpected_call_failures(response: Any) -> list[str]:
    """Gateway calls that crashed: the per-call form of a 500 (EXECUTION_ERROR, "unexpectedly")."""
    if response.status_code != 200:
        return []
    try:
        body = response.json()
    except ValueError:
        return []
    results = body.get("results") if isinstance(body, dict) else None
    return [
        f"{r.get('function')}: {r['error'].get('message')}"
        for r in results or []
        if isinstance(r, dict)
        and isinstance(r.get("error"), dict)
        and r["error"].get("code") == "EXECUTION_ERROR"
        and "unexpectedly" in str(r["error"].get("message"))
    ]


def run_checks(
    run: Run, case: Any, response: schemathesis.Response, secrets: Callable[[], list[str]]
) -> None:
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    request = _request_of(response)

    def found(check: str, why: str) -> None:
        run.add(Finding(operation, check, response.status_code, request, why[:600]))

    for check in (not_a_server_error, response_schema_conformance):
        try:
            case.validate_response(response, checks=[check])
        except FailureGroup as group:
            why = "; ".join(f"{f.title}: {f.message}" for f in group.exceptions)
            found(check.__name__, f"{why[:500]} body: {response.text[:300]}")
    shape = problem_shape(response)
    if shape is not None:
        found("problem_details", f"{shape}: {response.text[:300]}")
    crashed = unexpected_call_failures(response)
    if crashed:
        found("no_unexpected_call_failure", f"{crashed}: {response.text[:300]}")
    sent = (request + json.dumps(dict(response.request.headers))).casefold()
    visible = [s for s in secrets() if s.casefold() not in sent]
    leaks = leaked(response.text, visible)
    if leaks:
        found("no_other_clinic_data", f"clinic B's {leaks} in: {response.text[:400]}")


# --- the runner (in a worker thread) ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the cases go and how they are checked."""

    base_url: str
    headers: dict[str, str]
    session: requests.Session
    secrets: Callable[[], list[str]]


def run_operation(run: Run, target: Target, operation: Any, mode: GenerationMode) -> None:
    """The operation's cases of one generation mode, each sent and checked."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.settings(
        max_examples=MORE_EXAMPLES.get(label, MAX_EXAMPLES),
        derandomize=True,  # a fixed seed: the same cases on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(
            base_url=target.base_url,
            session=target.session,
            headers=target.headers,
            timeout=REQUEST_TIMEOUT_S,
        )
        run.cases[label] += 1
        run.statuses[response.status_code] += 1
        run_checks(run, case, response, target.secrets)

    try:
        one()
    except hypothesis.errors.Unsatisfiable:
        # nothing to break: an operation without parameters or body has no negative case
        if mode is not GenerationMode.NEGATIVE:
            raise
        run.without_negative.append(label)


def fuzz(
    schema: Any,
    run: Run,
    *,
    base_url: str,
    headers: dict[str, str],
    secrets: Callable[[], list[str]],
    between_operations: Callable[[], None],
) -> None:
    """Every operation of ``schema``, positive then negative cases, checked."""
    with requests.Session() as session:
        target = Target(base_url, headers, session, secrets)
        for result in schema.get_all_operations():
            operation = result.ok()
            between_operations()
            for mode in MODES:
                run_operation(run, target, operation, mode)


# --- the tests --------------------------------------------------------------------------------


async def _document(stack: Stack, path: str) -> dict[str, Any]:
    key = stack.tenant("clinic-a").admin_key
    async with stack.client(key) as http:
        response = await http.get(path)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


class VictimActivity:
    """Clinic B keeps working while A is fuzzed; its fresh trace ids join its secrets."""

    def __init__(self, stack: Stack, victim: Tenant, loop: asyncio.AbstractEventLoop) -> None:
        self.stack = stack
        self.victim = victim
        self.loop = loop
        self.extra: list[str] = []
        self.count = 0

    def secrets(self) -> list[str]:
        return [*self.victim.secrets, *self.extra]

    def act(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._act(), self.loop)
        future.result(timeout=60)

    async def _act(self) -> None:
        self.count += 1
        correlation = f"corr-{self.victim.marker}-{self.count}"
        response = await self.stack.execute(
            self.victim.admin_key,
            call_body("get_patient", {"patientId": SHARED.patient_id}),
            **{"X-Correlation-Id": correlation},
        )
        assert response.status_code == 200, response.text
        self.extra += [correlation, response.headers["x-trace-id"]]


async def projections_stalled(stack: Stack, within_s: float = 15.0) -> str | None:
    """None when every projection applies every event within ``within_s``; else why not."""
    try:
        await stack.wait_for_projections(timeout_s=within_s)
    except AssertionError:
        lag = await report_lag(stack.pool, PROJECTION_NAMES)
        behind = {r["name"]: (r["position"], r["lag_events"]) for r in lag if r["lag_events"]}
        return (
            f"projections stuck (name: (checkpoint, events behind)) {behind}: an event they "
            "cannot apply blocks every clinic's read models"
        )
    return None


DOCUMENTS = {"app": "/openapi.json", "gateway": "/ai/schema"}


@pytest.mark.parametrize("auth", ["clinic-a-admin", "no-key"])
@pytest.mark.parametrize("document", list(DOCUMENTS))
async def test_fuzz_openapi(
    stack: Stack, document: str, auth: str, capsys: pytest.CaptureFixture[str]
):
    raw = await _document(stack, DOCUMENTS[document])
    schema = schemathesis.openapi.from_dict(raw)
    attacker, victim = stack.tenant("clinic-a"), stack.tenant("clinic-b")
    # both headers: the gateway document declares both schemes, and schemathesis fills
    # them with made-up values unless the caller's own take their place
    key = attacker.admin_key
    headers = {"X-API-Key": key, "Authorization": f"Bearer {key}"} if auth != "no-key" else {}
    run = Run(f"{document} ({DOCUMENTS[document]}) as {auth}")
    activity = VictimActivity(stack, victim, asyncio.get_running_loop())
    started = time.perf_counter()
    await asyncio.to_thread(
        fuzz,
        schema,
        run,
        base_url=stack.base_url,
        headers=headers,
        secrets=activity.secrets,
        between_operations=activity.act,
    )
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n{run.summary()} in {seconds:.1f}s")
        for name, n in sorted(run.cases.items()):
            print(f"    {n:4d}  {name}")
    stalled = await projections_stalled(stack)
    if stalled:
        run.add(Finding("(after the run)", "projections_keep_up", 0, "-", stalled))
    assert run.total >= len(run.cases) * MAX_EXAMPLES // 2, "too few cases: generation failed?"
    findings = sorted(run.findings.values(), key=lambda f: (f.operation, f.check))
    assert not findings, f"{len(findings)} findings:\n" + "\n".join(f.describe() for f in findings)


# --- hostile strings, deterministically, in every parameter -----------------------------------

HOSTILE = {
    "nul": "a\x00b",
    "only-nul": "\x00",
    "unicode": "ș\u202e😀\ufeff",
    "sql": "' OR '1'='1' --",
    "traversal": "../../../etc/passwd",
    "format": "{0}%s%n${jndi:x}",
    "long": "x" * 3000,
}
"""Values random generation rarely produces but attackers always try."""
DATES = {"date-min": "0001-01-01", "date-max": "9999-12-31"}


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _string_leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _string_leaves(v, (*path, i))]
    return []


def _replaced(value: Any, path: tuple[Any, ...], new: str) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copy


def _values_for(name: str) -> dict[str, str]:
    return DATES if "date" in name.lower() else HOSTILE


def _hostile_requests(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, method, url, httpx kwargs): one hostile value in one place each."""
    from domain.functions import REGISTRY

    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "delete") or path.startswith("/webhooks"):
                continue
            params = operation.get("parameters", [])
            filled = {p["name"]: "x" for p in params if p["in"] == "path"}
            body = {"reason": "x"} if path.endswith("/erase") else None
            if path == "/ai/keys" and method == "post":
                body = {"name": "x", "scopes": ["read"]}
            for p in params:
                if p["in"] not in ("path", "query"):
                    continue
                for kind, value in HOSTILE.items():
                    names = (
                        {**filled, p["name"]: quote(value, safe="")}
                        if p["in"] == "path"
                        else filled
                    )
                    url = path.format(**names)
                    kw: dict[str, Any] = {"json": body} if body is not None else {}
                    if p["in"] == "query":
                        kw["params"] = {p["name"]: value}
                    out.append(
                        (f"{method.upper()} {path} {p['in']}:{p['name']}={kind}", method, url, kw)
                    )
            if body is not None:
                for leaf in _string_leaves(body):
                    for kind, value in HOSTILE.items():
                        url = path.format(**filled)
                        sent = _replaced(body, leaf, value)
                        label = f"{method.upper()} {path} body.{'.'.join(map(str, leaf))}={kind}"
                        out.append((label, method, url, {"json": sent}))
    for spec in REGISTRY:
        for example in spec.examples:
            for leaf in _string_leaves(example.arguments):
                for kind, value in _values_for(str(leaf[-1])).items():
                    arguments = _replaced(example.arguments, leaf, value)
                    label = f"{spec.name}({'.'.join(map(str, leaf))}={kind})"
                    out.append(
                        (label, "post", "/ai/execute", {"json": call_body(spec.name, arguments)})
                    )
        for example in spec.examples:  # a range at the very edge of the calendar
            if {"startDate", "endDate"} <= set(example.arguments):
                for kind, day in DATES.items():
                    arguments = {**example.arguments, "startDate": day, "endDate": day}
                    label = f"{spec.name}(startDate=endDate={kind})"
                    body = call_body(spec.name, arguments)
                    out.append((label, "post", "/ai/execute", {"json": body}))
    for kind, value in HOSTILE.items():
        out.append(
            (
                f"natural(query={kind})",
                "post",
                "/ai/execute",
                {"json": {"type": "natural", "query": value}},
            )
        )
    return out


async def test_hostile_strings_in_every_parameter(stack: Stack, capsys: pytest.CaptureFixture[str]):
    attacker, victim = stack.tenant("clinic-a"), stack.tenant("clinic-b")
    document = await _document(stack, "/openapi.json")
    requests_ = _hostile_requests(document)
    problems: dict[str, str] = {}
    started = time.perf_counter()
    async with stack.client(attacker.admin_key) as http:
        for label, method, url, kw in requests_:
            response = await http.request(method, url, **kw)
            why = []
            if response.status_code >= 500:
                why.append(f"server error {response.status_code}")
            shape = problem_shape(_as_schemathesis(response))
            if shape:
                why.append(f"not problem details ({shape})")
            crashed = unexpected_call_failures(response)
            if crashed:
                why.append(f"crashed call {crashed}")
            leaks = leaked(response.text, victim.secrets)
            if leaks:
                why.append(f"clinic B's {leaks}")
            position = _position(response)
            if position is not None:
                late = await stack.behind(position)
                if late:
                    why.append(
                        f"its write (position {position}) never reached the read models {late}"
                    )
            if why:
                problems[label] = f"{'; '.join(why)}: {response.text[:240]}"
    stalled = await projections_stalled(stack)
    if stalled:
        problems["(after all of them) the read models"] = stalled
    with capsys.disabled():
        print(
            f"\nhostile strings: {len(requests_)} requests, {len(problems)} failing, "
            f"in {time.perf_counter() - started:.1f}s"
        )
    assert len(requests_) > 200
    assert not problems, f"{len(problems)} hostile inputs broke the API:\n" + "\n".join(
        f"{label}: {why}" for label, why in sorted(problems.items())
    )


def _position(response: Any) -> int | None:
    """The global position an ``/ai/execute`` answer says its writes reached, if any."""
    raw = response.headers.get("x-position")
    return int(raw) if raw and raw.isdigit() else None


def _as_schemathesis(response: Any) -> schemathesis.Response:
    headers = {k: [v] for k, v in response.headers.items()}
    return schemathesis.Response(
        status_code=response.status_code,
        headers=headers,
        content=response.content,
        request=requests.Request(method="GET", url="http://x").prepare(),
        elapsed=0.0,
        verify=True,
    )
