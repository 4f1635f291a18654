"""Configuration from the environment (pydantic-settings). Loaded only by entry points.

Every field is documented in the README's configuration table; names below are the
environment variables (case-insensitive).
"""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # Where things run
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    api_host: str = Field(default="127.0.0.1", validation_alias="MEDICALCOR_API_HOST")
    api_port: int = Field(default=8000, validation_alias="MEDICALCOR_API_PORT")
    api_workers: int = Field(default=1, validation_alias="MEDICALCOR_API_WORKERS")
    temporal_port: int = Field(default=7233, validation_alias="MEDICALCOR_TEMPORAL_PORT")
    temporal_ui_port: int = Field(default=8233, validation_alias="MEDICALCOR_TEMPORAL_UI_PORT")
    state_dir: Path = Field(default=Path(".medicalcor"), validation_alias="MEDICALCOR_STATE_DIR")
    dev_api_key: str | None = Field(default=None, validation_alias="MEDICALCOR_DEV_API_KEY")
    worker_metrics_port: int = Field(
        default=9464, validation_alias="MEDICALCOR_WORKER_METRICS_PORT"
    )
    temporal_metrics_port: int = Field(
        default=9465, validation_alias="MEDICALCOR_TEMPORAL_METRICS_PORT"
    )
    projector_metrics_port: int = Field(
        default=9466, validation_alias="MEDICALCOR_PROJECTOR_METRICS_PORT"
    )
    task_queue_prefix: str = Field(default="medicalcor", validation_alias="MEDICALCOR_TASK_QUEUE")
    worker_cached_workflows: int = Field(
        default=200,
        ge=0,
        validation_alias="MEDICALCOR_WORKER_CACHED_WORKFLOWS",
        description=(
            "Workflows each task queue's worker keeps in memory (least recently used"
            " evicted, then replayed from history when next needed). 0: no cache."
        ),
    )

    # Secrets
    secret_key: str = Field(
        default="dev-insecure-secret-change-me", validation_alias="MEDICALCOR_SECRET_KEY"
    )
    codec_token: str | None = Field(
        default=None,
        validation_alias="MEDICALCOR_CODEC_TOKEN",
        description="Token in the codec URL the Temporal Web UI calls (it sends no API key).",
    )
    temporal_ui_origin: str | None = Field(
        default=None,
        validation_alias="MEDICALCOR_TEMPORAL_UI_ORIGIN",
        description="Browser origin of the Temporal Web UI, allowed by the codec's CORS.",
    )
    payload_keys: str | None = Field(
        default=None,
        validation_alias="MEDICALCOR_PAYLOAD_KEYS",
        description="Comma-separated base64 AES-256 keys; the first encrypts, all decrypt.",
    )

    # External services
    whatsapp_api_key: str | None = Field(default=None, validation_alias="WHATSAPP_API_KEY")
    whatsapp_base_url: str = Field(
        default="https://waba.360dialog.io/v1", validation_alias="WHATSAPP_BASE_URL"
    )
    whatsapp_webhook_secret: str | None = Field(
        default=None, validation_alias="WHATSAPP_WEBHOOK_SECRET"
    )
    hubspot_token: str | None = Field(default=None, validation_alias="HUBSPOT_TOKEN")
    hubspot_base_url: str = Field(
        default="https://api.hubapi.com", validation_alias="HUBSPOT_BASE_URL"
    )
    anthropic_api_key: str | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    anthropic_model: str = Field(default="claude-sonnet-4-6", validation_alias="ANTHROPIC_MODEL")
    anthropic_timeout_s: float = Field(default=15.0, validation_alias="ANTHROPIC_TIMEOUT_S")
    llm_daily_token_cap: int = Field(
        default=2_000_000,
        validation_alias="MEDICALCOR_LLM_DAILY_TOKENS",
        description=(
            "Claude tokens (input + output) per clinic per Europe/Bucharest day; once"
            " reached, the rules interpret natural requests. 0: never call Claude."
        ),
    )

    # Telemetry
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "MEDICALCOR_OTLP_ENDPOINT"),
    )
    service_name: str = Field(default="medicalcor", validation_alias="OTEL_SERVICE_NAME")
    log_level: str = Field(default="INFO", validation_alias="MEDICALCOR_LOG_LEVEL")

    # Abuse limits
    rate_limit_per_key_per_s: float = Field(default=50.0, validation_alias="MEDICALCOR_RATE_LIMIT")
    rate_limit_burst: int = Field(default=100, validation_alias="MEDICALCOR_RATE_BURST")
    clinic_rate_limit_per_s: float = Field(
        default=2000.0,
        gt=0,
        validation_alias="MEDICALCOR_CLINIC_RATE_LIMIT",
        description="Requests/s all of a clinic's keys together may make, per API process.",
    )
    clinic_rate_limit_burst: int = Field(
        default=4000, gt=0, validation_alias="MEDICALCOR_CLINIC_RATE_BURST"
    )
    max_body_bytes: int = Field(default=256 * 1024, validation_alias="MEDICALCOR_MAX_BODY_BYTES")
    max_calls_per_request: int = Field(default=10, validation_alias="MEDICALCOR_MAX_CALLS")

    def task_queue(self, kind: str) -> str:
        """Task queue for a kind of work: bookings, ai, messaging, default."""
        return f"{self.task_queue_prefix}-{kind}"

    def payload_key_bytes(self) -> list[bytes]:
        """Decoded codec keys; empty when none are configured."""
        if not self.payload_keys:
            return []
        return [base64.b64decode(k.strip()) for k in self.payload_keys.split(",") if k.strip()]

    @property
    def resolved_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"
