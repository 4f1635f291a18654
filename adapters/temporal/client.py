"""The one way MedicalCor connects to Temporal.

The pydantic data converter, the encryption codec (failure messages encrypted too)
and the interceptors are configured here, on the client, ONCE: workers built on
this client inherit its interceptors, so they are never passed to a Worker again.
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime

from adapters.settings import Settings
from adapters.temporal.codec import codec_for


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, AES-GCM encrypted, failure messages and traces encoded too."""
    codec = codec_for(settings.payload_key_bytes(), settings.secret_key)
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def client_interceptors(*, tracing: bool = True) -> list[Interceptor]:
    """OpenTelemetry tracing (optional) and MedicalCor's workflow/activity metrics."""
    from adapters.telemetry.temporal import TemporalMetricsInterceptor

    interceptors: list[Interceptor] = []
    if tracing:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor())
    interceptors.append(TemporalMetricsInterceptor())
    return interceptors


async def connect_client(
    settings: Settings,
    *,
    tracing: bool = True,
    runtime: Runtime | None = None,
    address: str | None = None,
) -> Client:
    """A client to ``settings``' Temporal, with converter, codec and interceptors."""
    return await Client.connect(
        address or settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=client_interceptors(tracing=tracing),
        runtime=runtime,
    )
