"""The `medicalcor` command: the whole stack for development, each part for production."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from adapters.settings import Settings

app = typer.Typer(help="MedicalCor: AI-first dental clinic CRM.", no_args_is_help=True)
projections_app = typer.Typer(help="Read-model projections.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed).", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    return Settings()


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        typer.echo("DATABASE_URL is not set", err=True)
        raise typer.Exit(2)
    return settings.database_url


@app.command()
def dev(
    no_seed: Annotated[bool, typer.Option("--no-seed", help="Do not seed a demo clinic.")] = False,
) -> None:
    """Run PostgreSQL, Temporal (with its Web UI), the projector, the worker and the API."""
    from api.devstack import run_dev

    raise typer.Exit(run_dev(_settings(), seed=not no_seed))


@app.command()
def api() -> None:
    """Serve the HTTP API (uvicorn; several workers balance connections by SO_REUSEPORT)."""
    from api.serving import SERVER_OPTIONS, serve

    s = _settings()
    options = {"factory": True, "log_level": s.log_level.lower(), **SERVER_OPTIONS}
    app_path = "api.app:create_app"
    raise typer.Exit(
        serve(app_path, host=s.api_host, port=s.api_port, workers=s.api_workers, **options)
    )


@app.command()
def worker() -> None:
    """Run the Temporal worker (all task queues)."""
    from workflows.worker import run_worker

    settings = _settings()
    with _process_tracing(settings, "medicalcor-worker"):
        asyncio.run(run_worker(settings))


@app.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""
    from adapters.postgres.migrate import apply_migrations

    applied = asyncio.run(apply_migrations(_database_url(_settings())))
    typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")


@app.command()
def seed() -> None:
    """Seed the demo clinic (doctors, hours, patients with consents, leads)."""
    from api import dev_setup

    s = _settings()
    summary = asyncio.run(dev_setup.seed_demo(s, _database_url(s)))
    typer.echo(json.dumps(summary, indent=2))


@projections_app.command("status")
def projections_status() -> None:
    """Each projection's checkpoint, lag and leader."""
    from api import dev_setup

    s = _settings()
    rows = asyncio.run(dev_setup.projection_status(_database_url(s)))
    typer.echo(json.dumps(rows, indent=2, default=str))


@projections_app.command("rebuild")
def projections_rebuild(name: str) -> None:
    """Rebuild one projection from the first event."""
    from api import dev_setup

    s = _settings()
    result = asyncio.run(dev_setup.projection_rebuild(_database_url(s), name))
    typer.echo(json.dumps(result, indent=2, default=str))


@projections_app.command("run")
def projections_run() -> None:
    """Run the projector (one leader per projection across processes) and the outbox
    relay (one leader across processes), until SIGTERM/SIGINT."""
    s = _settings()
    with _process_tracing(s, "medicalcor-projector"):
        asyncio.run(_projector_and_relay(s, _database_url(s)))


@contextlib.contextmanager
def _process_tracing(settings: Settings, default_name: str) -> Iterator[None]:
    """This process's tracing (OTLP export when configured), flushed at exit.

    The worker's RunWorkflow/RunActivity spans and their SQL join the API's trace
    (Temporal's interceptor carries the context); without a tracer provider here they
    would be dropped. ``OTEL_SERVICE_NAME`` overrides the default service name.
    """
    from adapters.telemetry.span_buffer import SpanBuffer
    from adapters.telemetry.tracing import setup_tracing

    name = os.environ.get("OTEL_SERVICE_NAME") or default_name
    # Only the API serves /diagnostics/traces: here the in-process buffer is a token
    # one (a full 2000-trace buffer nobody reads would hold ~40 MiB of spans).
    handle = setup_tracing(
        name, otlp_endpoint=settings.otlp_endpoint, buffer=SpanBuffer(max_traces=16)
    )
    try:
        yield
    finally:
        handle.shutdown()


async def _projector_and_relay(settings: Settings, database_url: str) -> None:
    """The projector process also runs the outbox relay: it follows the event log too.

    The relay stops when the projector does (it owns the signals); the relay itself
    never ends the process: it outlives PostgreSQL and Temporal outages by retrying.
    """
    import contextlib

    from adapters.gc_tuning import freeze_startup_heap, trim_heap_periodically
    from adapters.outbox_relay import run_outbox_relay
    from api import dev_setup

    # Everything imported: full collections need not walk modules and schemas again.
    freeze_startup_heap("projector")
    stop = asyncio.Event()
    relay = asyncio.create_task(run_outbox_relay(settings, database_url, stop))
    # Batches are allocated and freed whole: give glibc's free pages back (flat RSS).
    trimmer = asyncio.create_task(trim_heap_periodically("projector", stop))
    try:
        await dev_setup.run_projector_process(settings, database_url)
    finally:
        stop.set()
        await trimmer
        try:
            await asyncio.wait_for(relay, 10)
        except TimeoutError:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay


@keys_app.command("create")
def keys_create(
    clinic: Annotated[str, typer.Option(help="Clinic id the key is bound to.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "read,write",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key; the plain key is printed once."""
    from api import dev_setup

    s = _settings()
    out = asyncio.run(dev_setup.keys_create(s, _database_url(s), clinic, scopes.split(","), name))
    typer.echo(json.dumps(out, indent=2, default=str))


@keys_app.command("list")
def keys_list(clinic: Annotated[str | None, typer.Option()] = None) -> None:
    """List API keys (never the keys themselves)."""
    from api import dev_setup

    s = _settings()
    out = asyncio.run(dev_setup.keys_list(s, _database_url(s), clinic))
    typer.echo(json.dumps(out, indent=2, default=str))


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key; effective at once."""
    from api import dev_setup

    s = _settings()
    ok = asyncio.run(dev_setup.keys_revoke(s, _database_url(s), key_id))
    if not ok:
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@app.command("eval-intents")
def eval_intents(
    cases: Annotated[Path, typer.Option(help="YAML file of cases.")] = Path(
        "tests/unit/intent_cases.yaml"
    ),
) -> None:
    """Print the intent detector's accuracy over the evaluation set."""
    import runpy

    sys.argv = ["intent_eval", str(cases)]
    runpy.run_path("bench/intent_eval.py", run_name="__main__")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
