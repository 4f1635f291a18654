"""Gateway functions of the ``consent`` category: record_consent, check_consent."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from domain.commands import Phone, RecordConsent
from domain.events import ConsentStatus, ConsentType
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, Result, gateway_function
from domain.queries import CheckConsent

CurrentStatus = Literal["granted", "denied", "withdrawn", "expired", "unknown"]


class RecordConsentArgs(Arguments):
    patient_id: str = Field(min_length=1, description="The registered patient's id.")
    phone: Phone = Field(description="The phone the decision came from (E.164 or local form).")
    consent_type: ConsentType
    status: ConsentStatus = Field(description="granted, denied, or withdrawn (revokes a grant).")
    source: str = Field(
        min_length=1,
        max_length=100,
        description="How it was given: whatsapp, web_form, phone_call, in_person ...",
    )
    ip_address: str | None = Field(default=None, max_length=45, description="For web forms.")


class ConsentState(Result):
    status: CurrentStatus
    granted: bool
    policy_version: str | None = None
    policy_current: bool = False
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    source: str | None = None


class RecordConsentResult(ConsentState):
    patient_id: str
    consent_type: ConsentType


@gateway_function(
    category="consent",
    scopes={"consent"},
    side_effect="write",
    examples=[
        Example(
            "The patient agreed on WhatsApp to data processing",
            {
                "patientId": "pat-1",
                "phone": "0721 234 567",
                "consentType": "data_processing",
                "status": "granted",
                "source": "whatsapp",
            },
        ),
        Example(
            "The patient withdrew marketing on WhatsApp",
            {
                "patientId": "pat-1",
                "phone": "+40721234567",
                "consentType": "marketing_whatsapp",
                "status": "withdrawn",
                "source": "whatsapp",
            },
        ),
    ],
)
async def record_consent(args: RecordConsentArgs, ctx: FunctionContext) -> RecordConsentResult:
    """Record a patient's GDPR consent decision (granted, denied or withdrawn).

    Types: data_processing (needed to book), marketing_whatsapp, marketing_email,
    marketing_sms, appointment_reminders, treatment_updates, third_party_sharing.
    A grant lasts two years and is tied to the current privacy policy version;
    withdrawing is as easy as granting. Returns the type's current state.
    """
    result = await ctx.run(
        RecordConsent(
            patient_id=args.patient_id,
            phone=args.phone,
            consent_type=args.consent_type,
            status=args.status,
            source=args.source,
            ip_address=args.ip_address,
        )
    )
    return RecordConsentResult.model_validate(result)


class CheckConsentArgs(Arguments):
    one_of = (("patient_id", "phone"),)

    patient_id: str | None = Field(default=None, min_length=1)
    phone: Phone | None = Field(default=None, description="E.164 or a Romanian local form.")
    consent_types: list[ConsentType] | None = Field(
        default=None, description="The types to check; all types when left out."
    )


class ConsentTypeState(ConsentState):
    consent_type: ConsentType


class CheckConsentResult(Result):
    found: bool = Field(description="False when no patient matches.")
    patient_id: str | None = None
    consents: list[ConsentTypeState] = Field(default_factory=list)
    all_granted: bool = Field(description="True when every checked type is granted now.")


@gateway_function(
    category="consent",
    scopes={"read"},
    side_effect="read",
    examples=[
        Example("Everything for a patient", {"patientId": "pat-1"}),
        Example(
            "WhatsApp marketing for a phone number",
            {"phone": "0721234567", "consentTypes": ["marketing_whatsapp"]},
        ),
    ],
)
async def check_consent(args: CheckConsentArgs, ctx: FunctionContext) -> CheckConsentResult:
    """Current consent status of a patient, per type, with expiry and policy version.

    Status per type: granted, denied, withdrawn, expired (a grant older than two
    years) or unknown (never asked). Check before marketing or booking.
    """
    found = await ctx.ask(
        CheckConsent(
            patient_id=args.patient_id,
            phone=args.phone,
            consent_types=tuple(args.consent_types or ()),
        )
    )
    if found is None:
        return CheckConsentResult(found=False, all_granted=False)
    return CheckConsentResult.model_validate(found)
