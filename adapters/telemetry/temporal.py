"""Temporal telemetry: SDK metrics runtime, a metrics interceptor, health and counts.

Worker process wiring (entry point only, never at import)::

    runtime = temporal_runtime_with_prometheus(f"0.0.0.0:{settings.temporal_metrics_port}")
    client = await Client.connect(
        address, runtime=runtime,
        interceptors=[TracingInterceptor(), TemporalMetricsInterceptor()],
        data_converter=...)
    start_metrics_server(settings.worker_metrics_port)   # prometheus-client registry
    async with Worker(client, ...):                      # inherits the interceptors
        ...

So the worker exposes two endpoints: the Temporal SDK's own metrics
(``temporal_workflow_completed_total``, ``temporal_activity_execution_latency_seconds``
...) served by the Core runtime on ``bind_address``, and MedicalCor's registry
(``medicalcor_activities_total`` ...) served by
:func:`~adapters.telemetry.metrics.start_metrics_server`.
The API's client gets the same interceptor, so ``medicalcor_workflows_started_total``
counts starts where they happen; the API has one port only, so its client's SDK
metrics go through :mod:`adapters.telemetry.temporal_sdk` into its ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.exceptions
import temporalio.worker
import temporalio.workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adapters.telemetry.checks import CheckResult, HealthCheck
from adapters.telemetry.diagnostics import InfoProvider
from adapters.telemetry.metrics import (
    record_activity,
    record_workflow_completed,
    record_workflow_started,
)

_WORKFLOW_ENDED_EXTERN = "__medicalcor_workflow_ended"


def temporal_runtime_with_prometheus(
    bind_address: str, *, global_tags: Mapping[str, str] | None = None
) -> Runtime:
    """A Temporal ``Runtime`` whose SDK metrics are served at ``http://bind_address/metrics``.

    Counters get the ``_total`` suffix and durations are in seconds with a unit
    suffix, like the rest of our metrics. Creating it starts the endpoint, so call
    it once, from the worker's entry point, and pass it to ``Client.connect``.
    """
    config = PrometheusConfig(
        bind_address=bind_address,
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
    )
    telemetry = TelemetryConfig(metrics=config, global_tags=dict(global_tags or {}))
    return Runtime(telemetry=telemetry)


class TemporalMetricsInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Counts workflow starts (client), workflow ends and activity attempts (worker).

    Give it to the client once; workers built on that client inherit it. Workflow
    ends are reported from the sandbox through an extern function and only when the
    workflow is not replaying, so a replay never counts twice.
    """

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """Wrap the client's outbound calls."""
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Wrap activity executions."""
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Expose the metrics extern and return the workflow interceptor class."""
        input.unsafe_extern_functions[_WORKFLOW_ENDED_EXTERN] = record_workflow_completed
        return _WorkflowInbound


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        handle = await super().start_workflow(input)
        record_workflow_started(input.workflow)
        return handle


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        activity_type = temporalio.activity.info().activity_type
        started = time.perf_counter()
        status = "failed"
        try:
            result = await super().execute_activity(input)
            status = "completed"
            return result
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            status = "cancelled"
            raise
        except Exception:
            status = "failed"
            raise
        except BaseException:
            # activity.raise_complete_async() and interpreter exits land here
            status = "incomplete"
            raise
        finally:
            record_activity(activity_type, status, time.perf_counter() - started)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        status = "task_failed"
        try:
            result = await super().execute_workflow(input)
            status = "completed"
            return result
        except temporalio.workflow.ContinueAsNewError:
            status = "continued_as_new"
            raise
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            status = "cancelled"
            raise
        except temporalio.exceptions.FailureError:
            status = "failed"
            raise
        finally:
            # anything else fails the workflow task, which Temporal retries
            if not temporalio.workflow.unsafe.is_replaying():
                ended = temporalio.workflow.extern_functions()[_WORKFLOW_ENDED_EXTERN]
                ended(temporalio.workflow.info().workflow_type, status)


def temporal_check(client: temporalio.client.Client) -> HealthCheck:
    """The frontend's gRPC health RPC for the client's connection."""

    async def check() -> CheckResult:
        started = time.perf_counter()
        ok = await client.service_client.check_health()
        return CheckResult(
            bool(ok),
            {
                "namespace": client.namespace,
                "latencyMs": round((time.perf_counter() - started) * 1000, 3),
            },
        )

    return check


def temporal_workflow_counts(
    client: temporalio.client.Client, *, failed_window: timedelta = timedelta(hours=24)
) -> InfoProvider:
    """Snapshot provider: running workflows and failures within ``failed_window``."""

    async def counts() -> Mapping[str, Any]:
        since = (datetime.now(UTC) - failed_window).strftime("%Y-%m-%dT%H:%M:%SZ")
        running, failed = await asyncio.gather(
            client.count_workflows("ExecutionStatus='Running'"),
            client.count_workflows(f"ExecutionStatus='Failed' AND CloseTime > '{since}'"),
        )
        return {
            "running": running.count,
            "failedRecent": failed.count,
            "failedWindowHours": failed_window.total_seconds() / 3600,
        }

    return counts
