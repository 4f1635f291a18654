"""A patient's consents: one stream per patient, every type, every decision kept.

The current status of a type is its last decision, except that a grant lapses
two years after it was given (``domain.consent_policy``). Each decision records the
policy version, when and how it was made (GDPR Art. 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import from_iso, iso
from domain.consent_policy import CURRENT_POLICY_VERSION, consent_expiry
from domain.events import CONSENT_TYPES, ConsentRecorded, ConsentStatus, ConsentType

CurrentStatus = Literal["granted", "denied", "withdrawn", "expired", "unknown"]


class Consent(Aggregate):
    """Consent decisions of one patient (id = patient id)."""

    stream_type = "consent"
    snapshot_every = 50  # decisions accumulate over years of renewals and withdrawals

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.phone: str | None = None
        self.decisions: dict[str, dict[str, Any]] = {}
        """Last decision per consent type, JSON-ready."""

    def record(
        self,
        *,
        consent_type: ConsentType,
        status: ConsentStatus,
        source: str,
        phone: str,
        now: datetime,
        ip_address: str | None = None,
        policy_version: str = CURRENT_POLICY_VERSION,
    ) -> None:
        """Record a decision; granting, denying and withdrawing are equally easy."""
        self._record(
            ConsentRecorded(
                patient_id=self.id,
                phone=phone,
                consent_type=consent_type,
                status=status,
                source=source,
                ip_address=ip_address,
                policy_version=policy_version,
                decided_at=now,
                expires_at=consent_expiry(now) if status == "granted" else None,
            )
        )

    def status_of(self, consent_type: str, now: datetime) -> CurrentStatus:
        """The last decision for the type, ``expired`` for a lapsed grant, else ``unknown``."""
        decision = self.decisions.get(consent_type)
        if decision is None:
            return "unknown"
        expires = from_iso(decision["expires_at"])
        if decision["status"] == "granted" and expires is not None and now >= expires:
            return "expired"
        status: CurrentStatus = decision["status"]
        return status

    def is_granted(self, consent_type: str, now: datetime) -> bool:
        """True when the type is granted and not expired at ``now``."""
        return self.status_of(consent_type, now) == "granted"

    def missing(self, consent_types: Iterable[str], now: datetime) -> list[str]:
        """The given types that are not currently granted, in the given order."""
        return [t for t in consent_types if not self.is_granted(t, now)]

    def view(self, consent_types: Iterable[str] | None, now: datetime) -> dict[str, Any]:
        """Per type: status, granted, policy version, when and how, expiry (camelCase)."""
        types = list(consent_types) if consent_types else list(CONSENT_TYPES)
        return {t: self._view_one(t, now) for t in types}

    def _view_one(self, consent_type: str, now: datetime) -> dict[str, Any]:
        decision = self.decisions.get(consent_type, {})
        status = self.status_of(consent_type, now)
        return {
            "status": status,
            "granted": status == "granted",
            "policyVersion": decision.get("policy_version"),
            "policyCurrent": decision.get("policy_version") == CURRENT_POLICY_VERSION,
            "decidedAt": decision.get("decided_at"),
            "expiresAt": decision.get("expires_at"),
            "source": decision.get("source"),
        }

    # --- state --------------------------------------------------------------------

    def when_ConsentRecorded(self, e: ConsentRecorded) -> None:
        self.phone = e.phone
        self.decisions[e.consent_type] = {
            "status": e.status,
            "policy_version": e.policy_version,
            "decided_at": iso(e.decided_at),
            "expires_at": iso(e.expires_at),
            "source": e.source,
        }

    def snapshot_state(self) -> dict[str, Any]:
        return {"phone": self.phone, "decisions": {k: dict(v) for k, v in self.decisions.items()}}

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        consent = cls(aggregate_id)
        consent.phone = state.get("phone")
        consent.decisions = {k: dict(v) for k, v in state["decisions"].items()}
        consent.version = version
        return consent
