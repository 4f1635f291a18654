"""Consent: the last decision per type counts; grants lapse after two years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from domain.aggregates import Consent
from domain.consent_policy import (
    CURRENT_POLICY_VERSION,
    ask_for,
    consent_expiry,
    required_consent_for,
)
from domain.events import CONSENT_TYPES, ConsentRecorded
from tests.contracts.aggregate_contract import AggregateMachine

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def decide(consent: Consent, status: str, at: datetime = T0, kind: str = "data_processing") -> None:
    consent.record(
        consent_type=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        source="whatsapp",
        phone="+40721234567",
        now=at,
        ip_address="10.0.0.1",
    )


def test_a_grant_records_policy_version_time_and_expiry() -> None:
    consent = Consent("p-1")
    decide(consent, "granted")
    [event] = consent.pending_events
    assert isinstance(event, ConsentRecorded)
    assert event.policy_version == CURRENT_POLICY_VERSION
    assert event.decided_at == T0
    assert event.expires_at == datetime(2027, 3, 3, 10, 0, tzinfo=UTC)
    assert consent.is_granted("data_processing", T0)


def test_a_grant_lapses_after_two_years() -> None:
    consent = Consent("p-1")
    decide(consent, "granted")
    expiry = consent_expiry(T0)
    assert consent.status_of("data_processing", expiry - timedelta(seconds=1)) == "granted"
    assert consent.status_of("data_processing", expiry) == "expired"
    assert consent.missing(["data_processing"], expiry) == ["data_processing"]


def test_a_leap_day_grant_lapses_on_the_28th() -> None:
    leap = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert consent_expiry(leap) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)


def test_withdrawal_is_as_easy_as_granting_and_wins() -> None:
    consent = Consent("p-1")
    decide(consent, "granted")
    decide(consent, "withdrawn", T0 + timedelta(minutes=5))
    assert consent.status_of("data_processing", T0 + timedelta(minutes=6)) == "withdrawn"
    last = consent.pending_events[-1]
    assert isinstance(last, ConsentRecorded) and last.expires_at is None


def test_types_are_independent_and_unknown_until_decided() -> None:
    consent = Consent("p-1")
    decide(consent, "granted", kind="marketing_whatsapp")
    assert consent.status_of("marketing_whatsapp", T0) == "granted"
    assert consent.status_of("marketing_email", T0) == "unknown"
    assert consent.missing(["marketing_whatsapp", "data_processing"], T0) == ["data_processing"]


def test_view_reports_every_type_with_expiry_and_policy() -> None:
    consent = Consent("p-1")
    decide(consent, "granted")
    view = consent.view(None, T0)
    assert set(view) == set(CONSENT_TYPES)
    assert view["data_processing"] == {
        "status": "granted",
        "granted": True,
        "policyVersion": CURRENT_POLICY_VERSION,
        "policyCurrent": True,
        "decidedAt": T0.isoformat(),
        "expiresAt": consent_expiry(T0).isoformat(),
        "source": "whatsapp",
    }
    assert view["marketing_sms"]["status"] == "unknown"
    assert view["marketing_sms"]["granted"] is False


def test_which_consent_an_action_needs() -> None:
    assert required_consent_for("scheduling") == "data_processing"
    assert required_consent_for("reminder") == "appointment_reminders"
    assert required_consent_for("marketing_message", "whatsapp") == "marketing_whatsapp"
    assert required_consent_for("marketing_message", "email") == "marketing_email"
    assert required_consent_for("marketing_message", "sms") == "marketing_sms"
    assert "processing of their personal data" in ask_for(["data_processing"])


TYPES = ["data_processing", "marketing_whatsapp", "appointment_reminders"]


class ConsentMachine(AggregateMachine):
    aggregate = Consent

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.last: dict[str, tuple[str, datetime]] = {}

    @rule(kind=st.sampled_from(TYPES), status=st.sampled_from(["granted", "denied", "withdrawn"]))
    def record(self, kind: str, status: str) -> None:
        decide(self.agg, status, self.now, kind)
        self.last[kind] = (status, self.now)

    @rule(days=st.integers(0, 400), seconds=st.integers(0, 86_399))
    def time_passes(self, days: int, seconds: int) -> None:
        self.now += timedelta(days=days, seconds=seconds)

    @invariant()
    def status_is_the_last_decision_unless_expired(self) -> None:
        for kind in TYPES:
            status = self.agg.status_of(kind, self.now)
            if kind not in self.last:
                assert status == "unknown"
                continue
            decided, at = self.last[kind]
            lapsed = decided == "granted" and self.now >= consent_expiry(at)
            assert status == ("expired" if lapsed else decided)
            assert self.agg.is_granted(kind, self.now) == (status == "granted")


ConsentMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestConsentMachine = ConsentMachine.TestCase
