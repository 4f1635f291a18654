"""Gateway function of the ``messaging`` category: send_whatsapp."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from domain.commands import Phone, QueueWhatsAppMessage
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, Result, StringMap, gateway_function
from domain.messaging import TEMPLATES
from domain.queries import GetPatient, PatientView


def _known_template(name: str) -> str:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}")
    return name


TemplateName = Annotated[
    str,
    AfterValidator(_known_template),
    WithJsonSchema({"type": "string", "enum": sorted(TEMPLATES)}),
]


class SendWhatsAppArgs(Arguments):
    one_of = (("message", "template_name"),)
    at_most_one = (("message", "template_name"),)

    to: Phone = Field(description="Recipient: E.164 (+40721234567) or a Romanian local form.")
    message: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Free text; only inside a conversation the patient opened.",
    )
    template_name: TemplateName | None = Field(
        default=None, description="An approved template (needed to start a conversation)."
    )
    template_params: list[str] | StringMap | None = Field(
        default=None,
        description=(
            "The template's parameters, by name (e.g. {name, date DD.MM.YYYY, time HH:mm, "
            "location}) or in template order."
        ),
    )
    language: Literal["ro", "en", "de"] = Field(default="ro", description="Template language.")
    patient_id: str | None = Field(
        default=None, min_length=1, description="The patient; looked up by phone when left out."
    )


class SendWhatsAppResult(Result):
    message_id: str
    to: str = Field(description="E.164.")
    patient_id: str | None = None
    status: str = Field(description="'queued': in the outbox, delivery started.")
    delivery_workflow_id: str = Field(description="Follow the delivery with get_workflow_status.")


@gateway_function(
    category="messaging",
    scopes={"messaging", "read"},  # it may look the recipient up by phone
    side_effect="outbound",
    examples=[
        Example(
            "Confirm an appointment with the approved template",
            {
                "to": "0721 234 567",
                "templateName": "appointment_confirmation",
                "templateParams": {
                    "name": "Ana",
                    "date": "14.03.2025",
                    "time": "10:30",
                    "location": "Str. Victoriei 10, București",
                },
            },
        ),
        Example(
            "Reply inside an open conversation",
            {"to": "+40721234567", "message": "Vă așteptăm mâine la 10:30."},
        ),
    ],
)
async def send_whatsapp(args: SendWhatsAppArgs, ctx: FunctionContext) -> SendWhatsAppResult:
    """Send a WhatsApp message: a free-text message or an approved template.

    Consent-gated: marketing templates need the patient's marketing_whatsapp consent,
    reminders appointment_reminders, everything else data_processing; a missing one
    answers CONSENT_REQUIRED with what to ask. Limited per person: a template is not
    sent again within its cooldown (marketing: 7 days) and a person gets a bounded
    number of messages a day (booking confirmations, reminders and receipts are never
    held back); either limit answers RATE_LIMITED with retryAfter (seconds), the
    template and the limit, and nothing is sent. The message is recorded in the outbox
    and delivered through the WhatsApp provider; the result has its id and the
    delivery workflow's id.
    """
    patient_id = args.patient_id or await _patient_by_phone(ctx, args.to)
    message_id = ctx.new_id("msg")
    queued = await ctx.run(
        QueueWhatsAppMessage(
            message_id=message_id,
            to=args.to,
            patient_id=patient_id,
            template_name=args.template_name,
            template_params=args.template_params or [],
            language=args.language,
            text=args.message,
        )
    )
    delivery = await ctx.workflows.start_message_delivery(ctx.command, message_id)
    return SendWhatsAppResult(
        message_id=queued["messageId"],
        to=args.to,
        patient_id=patient_id,
        status=str(queued["status"]),
        delivery_workflow_id=delivery.workflow_id,
    )


async def _patient_by_phone(ctx: FunctionContext, phone: str) -> str | None:
    record: PatientView | None = await ctx.ask(GetPatient(phone=phone))
    return None if record is None else record.patient_id
