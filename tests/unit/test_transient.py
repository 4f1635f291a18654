"""Which failures count as "a dependency is away, retry" (503) rather than a bug (500)."""

from __future__ import annotations

import errno
import socket

import asyncpg
import pytest
from temporalio.service import RPCError, RPCStatusCode

from adapters.transient import is_transient
from api.ai import _answer
from api.ai_models import CallError, CallResult, ExecuteResponse


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError(111, "Connection refused"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        socket.gaierror(-2, "Name or service not known"),
        TimeoutError(),
        RPCError("server unavailable", RPCStatusCode.UNAVAILABLE, b""),
    ],
)
def test_dependency_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


def test_an_outage_wrapped_in_another_error_is_still_transient() -> None:
    try:
        try:
            raise asyncpg.CannotConnectNowError("starting up")
        except asyncpg.PostgresError as inner:
            raise RuntimeError("could not load the aggregate") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("x"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UndefinedTableError("no such table"),
        RPCError("not found", RPCStatusCode.NOT_FOUND, b""),
        FileNotFoundError("missing"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
        asyncpg.DataError("invalid input for query argument $1: 'x' (an int is required)"),
    ],
)
def test_bugs_and_refusals_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def _response(code: str | None) -> ExecuteResponse:
    error = CallError(code=code, message="m", details={}) if code else None
    result = CallResult(
        call_id="c1",
        function="get_patient",
        arguments={},
        executed=True,
        success=code is None,
        error=error,
        execution_time_ms=1.0,
    )
    return ExecuteResponse(
        success=code is None,
        request_id="r",
        type="function_call",
        results=[result],
        total_execution_time_ms=1.0,
        trace_id="t",
    )


def test_a_call_cut_by_an_outage_answers_503_with_retry_after() -> None:
    response = _answer(_response("SERVICE_UNAVAILABLE"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("code", [None, "NOT_FOUND", "EXECUTION_ERROR", "CONFLICT"])
def test_other_outcomes_answer_200(code: str | None) -> None:
    assert _answer(_response(code)).status_code == 200
