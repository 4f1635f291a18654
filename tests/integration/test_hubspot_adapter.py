"""The HubSpot client against a fake CRM v3 contacts API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.hubspot import (
    ContactProperties,
    HubSpotClient,
    HubSpotPermanentError,
    HubSpotTransientError,
)
from domain.errors import InvalidArguments
from tests.fakes import FakeHubSpot

PHONE = "+40721234567"
Call = tuple[str, str, str, float]

LEAD = ContactProperties(
    firstname="Ana",
    lead_status="scored",
    lead_score=5,
    lead_source="whatsapp",
    procedure_interest="all_on_4",
    consents={"data_processing": True, "marketing_whatsapp": False},
    utm={"source": "facebook", "campaign": "implant-spring", "term": ""},
)


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


@pytest.fixture
def calls() -> list[Call]:
    return []


def _client(fake: FakeHubSpot, calls: list[Call], **kw: Any) -> HubSpotClient:
    return HubSpotClient(fake.token, base_url=fake.url, on_call=lambda *a: calls.append(a), **kw)


async def test_new_phone_searches_then_creates(fake: FakeHubSpot, calls: list[Call]) -> None:
    async with _client(fake, calls) as client:
        result = await client.upsert_contact("0721 234 567", LEAD)

    assert result.created is True
    stored = fake.contacts[result.contact_id]["properties"]
    assert stored["phone"] == PHONE
    assert stored["lead_score"] == "5"
    assert stored["consent_data_processing"] == "true"
    assert stored["consent_marketing_whatsapp"] == "false"
    assert stored["utm_source"] == "facebook"
    assert "utm_term" not in stored  # empty UTM values are not written
    search, create = fake.requests
    assert (search.method, search.path) == ("POST", "/crm/v3/objects/contacts/search")
    assert search.headers["authorization"] == f"Bearer {fake.token}"
    assert search.json()["filterGroups"] == [
        {"filters": [{"propertyName": "phone", "operator": "EQ", "value": PHONE}]}
    ]
    assert (create.method, create.path) == ("POST", "/crm/v3/objects/contacts")
    assert [c[:3] for c in calls] == [
        ("hubspot", "search_contact", "success"),
        ("hubspot", "create_contact", "success"),
    ]


async def test_known_phone_is_patched(fake: FakeHubSpot, calls: list[Call]) -> None:
    existing = fake.add_contact({"phone": PHONE, "firstname": "Ana", "lead_status": "new"})
    fake.add_contact({"phone": "+40722000000", "firstname": "Other"})

    async with _client(fake, calls) as client:
        result = await client.upsert_contact(PHONE, ContactProperties(lead_status="qualified"))

    assert (result.contact_id, result.created) == (existing, False)
    assert fake.contacts[existing]["properties"]["lead_status"] == "qualified"
    assert fake.contacts[existing]["properties"]["firstname"] == "Ana"
    assert len(fake.contacts) == 2
    update = fake.requests[-1]
    assert (update.method, update.path) == ("PATCH", f"/crm/v3/objects/contacts/{existing}")
    assert update.json() == {"properties": {"phone": PHONE, "lead_status": "qualified"}}


async def test_two_upserts_of_one_phone_make_one_contact(
    fake: FakeHubSpot, calls: list[Call]
) -> None:
    async with _client(fake, calls) as client:
        first = await client.upsert_contact(PHONE, LEAD)
        second = await client.upsert_contact(PHONE, ContactProperties(lead_status="converted"))
    assert second.contact_id == first.contact_id
    assert second.created is False
    assert len(fake.contacts) == 1


async def test_existing_email_conflict_updates_that_contact(
    fake: FakeHubSpot, calls: list[Call]
) -> None:
    existing = fake.add_contact({"email": "ana@example.ro", "phone": "+40722000000"})
    async with _client(fake, calls) as client:
        result = await client.upsert_contact(PHONE, ContactProperties(email="ana@example.ro"))
    assert (result.contact_id, result.created) == (existing, False)
    assert fake.contacts[existing]["properties"]["phone"] == PHONE
    assert [r.route for r in fake.requests] == ["search", "create", "update"]


async def test_short_rate_limit_is_waited_out_once(fake: FakeHubSpot, calls: list[Call]) -> None:
    fake.fail_next(429, route="search", retry_after="0.2")
    started = time.monotonic()
    async with _client(fake, calls, max_rate_limit_wait_s=1.0) as client:
        result = await client.upsert_contact(PHONE, LEAD)
    assert result.created is True
    assert time.monotonic() - started >= 0.2
    assert [r.route for r in fake.requests] == ["search", "search", "create"]
    assert [c[2] for c in calls] == ["rate_limited", "success", "success"]


async def test_long_rate_limit_raises_with_retry_after(
    fake: FakeHubSpot, calls: list[Call]
) -> None:
    fake.fail_next(429, retry_after="30")
    async with _client(fake, calls, max_rate_limit_wait_s=1.0) as client:
        with pytest.raises(HubSpotTransientError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.retry_after == 30.0
    assert exc.value.status_code == 429
    assert exc.value.category == "RATE_LIMIT"
    assert exc.value.correlation_id
    assert len(fake.requests) == 1


async def test_repeated_rate_limit_waits_only_once(fake: FakeHubSpot, calls: list[Call]) -> None:
    fake.fail_next(429, retry_after="0.05", times=2)
    async with _client(fake, calls) as client:
        with pytest.raises(HubSpotTransientError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.retry_after == pytest.approx(0.05)
    assert len(fake.requests) == 2


async def test_429_without_header_suggests_one_second(fake: FakeHubSpot, calls: list[Call]) -> None:
    fake.fail_next(429)
    async with _client(fake, calls, max_rate_limit_wait_s=0) as client:
        with pytest.raises(HubSpotTransientError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    fake: FakeHubSpot, calls: list[Call], status: int
) -> None:
    fake.fail_next(status, route="create")
    async with _client(fake, calls) as client:
        with pytest.raises(HubSpotTransientError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.status_code == status
    assert exc.value.retryable is True
    assert calls[-1][2] == "http_5xx"
    assert fake.contacts == {}


async def test_bad_token_is_permanent(fake: FakeHubSpot) -> None:
    async with HubSpotClient("wrong", base_url=fake.url) as client:
        with pytest.raises(HubSpotPermanentError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.status_code == 401
    assert exc.value.category == "INVALID_AUTHENTICATION"
    assert exc.value.retryable is False


async def test_property_the_portal_lacks_is_permanent(fake: FakeHubSpot, calls: list[Call]) -> None:
    del fake.properties["procedure_interest"]
    async with _client(fake, calls) as client:
        with pytest.raises(HubSpotPermanentError) as exc:
            await client.upsert_contact(PHONE, LEAD)
    assert exc.value.status_code == 400
    assert exc.value.category == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in str(exc.value)


async def test_timeout_is_transient(fake: FakeHubSpot, calls: list[Call]) -> None:
    fake.delay_next(2.0)
    async with _client(fake, calls, timeout_s=0.3) as client:
        with pytest.raises(HubSpotTransientError, match="timed out"):
            await client.upsert_contact(PHONE, LEAD)
    assert calls[0][2] == "timeout"


async def test_invalid_phone_never_reaches_hubspot(fake: FakeHubSpot, calls: list[Call]) -> None:
    async with _client(fake, calls) as client:
        with pytest.raises(InvalidArguments):
            await client.upsert_contact("123", LEAD)
    assert fake.requests == []


def test_properties_serialise_as_hubspot_strings() -> None:
    assert LEAD.to_hubspot(PHONE) == {
        "phone": PHONE,
        "firstname": "Ana",
        "lead_status": "scored",
        "lead_score": "5",
        "lead_source": "whatsapp",
        "procedure_interest": "all_on_4",
        "consent_data_processing": "true",
        "consent_marketing_whatsapp": "false",
        "utm_source": "facebook",
        "utm_campaign": "implant-spring",
    }
