"""Telemetry adapters: Prometheus metrics, OpenTelemetry tracing, diagnostics, JSON logs.

Import the submodules you need (``adapters.telemetry.metrics`` for the ``record_*``
helpers, ``tracing``, ``diagnostics``, ``logging``, ``temporal``). Nothing here starts
a server, registers a metric or touches the environment at import time: metric
objects are created on first use (see ``metrics.get_metrics``), tracing and logging
are configured by the composition root.
"""
