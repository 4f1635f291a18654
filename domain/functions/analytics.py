"""Gateway function of the ``analytics`` category: get_lead_analytics."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field

from domain.dates import ClinicDate
from domain.events import LeadChannel
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, Result, gateway_function
from domain.queries import GetLeadAnalytics

GroupBy = Literal["day", "week", "month", "channel", "classification"]


class GetLeadAnalyticsArgs(Arguments):
    start_date: ClinicDate = Field(description="First day (inclusive), clinic time.")
    end_date: ClinicDate = Field(description="Last day (inclusive).")
    group_by: GroupBy | None = Field(default=None, description="Split the figures by this.")
    channel: LeadChannel | None = Field(default=None, description="Only leads of this channel.")


class LeadFigures(Result):
    leads: int = 0
    scored: int = 0
    qualified: int = 0
    converted: int = 0
    lost: int = 0
    hot: int = 0
    warm: int = 0
    cold: int = 0
    unqualified: int = 0
    average_score: float | None = None
    conversion_rate: float | None = None


class LeadGroup(LeadFigures):
    key: str = Field(description="The day, week, month, channel or classification.")


class GetLeadAnalyticsResult(Result):
    start_date: date
    end_date: date
    group_by: GroupBy | None = None
    channel: LeadChannel | None = None
    totals: LeadFigures
    groups: list[LeadGroup] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


@gateway_function(
    category="analytics",
    scopes={"read"},
    side_effect="read",
    examples=[
        Example(
            "This month's leads by channel",
            {"startDate": "2025-03-01", "endDate": "2025-03-31", "groupBy": "channel"},
        ),
        Example(
            "WhatsApp leads per week",
            {
                "startDate": "2025-01-01",
                "endDate": "2025-03-31",
                "groupBy": "week",
                "channel": "whatsapp",
            },
        ),
    ],
)
async def get_lead_analytics(
    args: GetLeadAnalyticsArgs, ctx: FunctionContext
) -> GetLeadAnalyticsResult:
    """Lead figures for a date range: new, scored, qualified, converted, lost leads.

    Also counts per classification (HOT, WARM, COLD, UNQUALIFIED), the average score
    and the conversion rate; optionally grouped by day, week, month, channel or
    classification and filtered by channel. Computed from the projections.
    """
    figures = await ctx.ask(
        GetLeadAnalytics(
            start_date=args.start_date,
            end_date=args.end_date,
            group_by=args.group_by,
            channel=args.channel,
        )
    )
    return GetLeadAnalyticsResult.model_validate(figures)
