"""Gateway functions of the ``patients`` category: get_patient, update_patient."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from domain.commands import PatientChanges, Phone, UpdatePatient
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, Result, gateway_function
from domain.queries import GetPatient

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE_HELP = "Phone: E.164 (+40721234567) or a Romanian local form (0721 234 567)."


class GetPatientArgs(Arguments):
    one_of = (("patient_id", "phone", "email"),)

    patient_id: str | None = Field(default=None, min_length=1, description="The patient's id.")
    phone: Phone | None = Field(default=None, description=PHONE_HELP)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)


class PatientRecord(Result):
    patient_id: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = Field(default=None, description="E.164.")
    email: str | None = None
    date_of_birth: date | None = None
    notes: str | None = None
    tags: list[str] = Field(default_factory=list)
    lead_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class GetPatientResult(Result):
    found: bool
    patient: PatientRecord | None = None


@gateway_function(
    category="patients",
    scopes={"read"},
    side_effect="read",
    examples=[
        Example("By id", {"patientId": "pat-1"}),
        Example("By a local phone number", {"phone": "0721 234 567"}),
        Example("By e-mail", {"email": "ana.pop@example.ro"}),
    ],
)
async def get_patient(args: GetPatientArgs, ctx: FunctionContext) -> GetPatientResult:
    """Look a patient up by id, phone or e-mail (give at least one).

    Returns the patient's record (name, phone, e-mail, date of birth, notes, tags) or
    found=false when no patient matches. Use the patientId it returns in other calls.
    """
    record = await ctx.ask(
        GetPatient(patient_id=args.patient_id, phone=args.phone, email=args.email)
    )
    if record is None:
        return GetPatientResult(found=False)
    return GetPatientResult(found=True, patient=PatientRecord.model_validate(record))


class PatientUpdates(Arguments):
    one_of = (("first_name", "last_name", "email", "phone", "date_of_birth", "notes", "tags"),)

    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    phone: Phone | None = Field(default=None, description=PHONE_HELP)
    date_of_birth: date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    tags: list[str] | None = Field(default=None, description="Replaces the patient's tags.")


class UpdatePatientArgs(Arguments):
    patient_id: str = Field(min_length=1, description="The patient's id (see get_patient).")
    updates: PatientUpdates = Field(description="Only the fields to change; null = unchanged.")


class UpdatePatientResult(Result):
    patient_id: str
    updated: bool = Field(description="False when every given field already had that value.")
    changed_fields: list[str]
    message: str | None = None


@gateway_function(
    category="patients",
    scopes={"write"},
    side_effect="write",
    idempotent=True,
    examples=[
        Example(
            "Correct a patient's e-mail and add a tag",
            {"patientId": "pat-1", "updates": {"email": "ana.pop@example.ro", "tags": ["vip"]}},
        ),
        Example("Change the phone", {"patientId": "pat-1", "updates": {"phone": "0722 111 222"}}),
    ],
)
async def update_patient(args: UpdatePatientArgs, ctx: FunctionContext) -> UpdatePatientResult:
    """Change a patient's profile: name, e-mail, phone, date of birth, notes, tags.

    Only fields whose value really changes are recorded; the result lists them
    (changedFields). An unknown patient answers NOT_FOUND.
    """
    changes = PatientChanges.model_validate(args.updates.model_dump(exclude_none=True))
    result = await ctx.run(UpdatePatient(patient_id=args.patient_id, updates=changes))
    return UpdatePatientResult.model_validate(result)
