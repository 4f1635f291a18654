"""Gateway function of the ``leads`` category: score_lead."""

from __future__ import annotations

from pydantic import Field

from domain.commands import Phone, ScoreLead
from domain.events import LeadChannel, LeadClassification, LeadStatus
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, JsonObject, Result, gateway_function
from domain.scoring import LeadMessage, SuggestedAction, UtmParams


class ScoreLeadArgs(Arguments):
    phone: Phone = Field(
        description="The lead's phone: E.164 (+40721234567) or Romanian local (0721 234 567)."
    )
    channel: LeadChannel = Field(description="Where the lead contacted the clinic.")
    messages: list[LeadMessage] = Field(
        default_factory=list,
        max_length=50,
        description="The conversation so far, oldest first; only the lead's (user) messages count.",
    )
    utm_params: UtmParams | None = Field(
        default=None, description="Campaign attribution of the first contact."
    )
    metadata: JsonObject = Field(
        default_factory=dict, description="Anything else known about the contact (e.g. source)."
    )


class ScoreLeadResult(Result):
    lead_id: str
    created: bool = Field(description="True when this call created the lead.")
    status: LeadStatus
    score: int = Field(ge=1, le=5)
    classification: LeadClassification
    confidence: float
    reasons: list[str]
    suggested_action: SuggestedAction
    procedure_interest: str | None = None
    emergency: bool = Field(
        description="Accident or injury: tell the person to call 112; the clinic is no ER."
    )


@gateway_function(
    category="leads",
    scopes={"write"},
    side_effect="write",
    examples=[
        Example(
            "Score a WhatsApp lead asking about All-on-4 prices",
            {
                "phone": "0721 234 567",
                "channel": "whatsapp",
                "messages": [{"role": "user", "content": "Cât costă un All-on-4? Am buget."}],
            },
        ),
        Example(
            "Score a web lead from a campaign",
            {
                "phone": "+40 721-234-567",
                "channel": "web",
                "utmParams": {"source": "google", "medium": "cpc", "campaign": "implant-2025"},
            },
        ),
    ],
)
async def score_lead(args: ScoreLeadArgs, ctx: FunctionContext) -> ScoreLeadResult:
    """Score a lead 1-5 from its conversation; creates the lead on first contact.

    Scores: 5 All-on-X with a budget question, 4 All-on-X, at least 3 for implants,
    veneers, whitening or extraction; urgency and budget words add one. 4-5 is HOT,
    3 WARM, 2 COLD, 1 UNQUALIFIED. Returns the score, classification, confidence,
    the reasons and the suggested next action. When `emergency` is true the person
    reported an accident or injury: tell them to call 112.
    """
    result = await ctx.run(
        ScoreLead(
            phone=args.phone,
            channel=args.channel,
            messages=args.messages,
            utm=args.utm_params,
            metadata=args.metadata,
        )
    )
    return ScoreLeadResult.model_validate(result)
