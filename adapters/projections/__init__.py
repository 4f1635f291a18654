"""Read-model projections and the projector that keeps them current.

For the CLI and the composition root: :func:`run_projector`, :func:`status`,
:func:`rebuild`, and the registry of projections by name.
"""

from __future__ import annotations

from adapters.projections.appointments import AppointmentsProjection
from adapters.projections.base import ProjectedEvent, Projection
from adapters.projections.clinics import ClinicsProjection
from adapters.projections.consents import ConsentsProjection
from adapters.projections.daily import DailyMetricsProjection
from adapters.projections.leads import LeadsProjection, LeadStatsProjection
from adapters.projections.messages import MessagesProjection
from adapters.projections.patients import PatientActivityProjection, PatientsProjection
from adapters.projections.personal import PersonalData
from adapters.projections.runner import (
    Projector,
    personal_of,
    rebuild,
    report_lag,
    run_projector,
    status,
    store_reader,
    table_reader,
)

PROJECTION_TYPES: tuple[type[Projection], ...] = (
    ClinicsProjection,
    LeadsProjection,
    LeadStatsProjection,
    PatientsProjection,
    PatientActivityProjection,
    AppointmentsProjection,
    ConsentsProjection,
    MessagesProjection,
    DailyMetricsProjection,
)
PROJECTION_NAMES: tuple[str, ...] = tuple(p.name for p in PROJECTION_TYPES)


def all_projections(personal: PersonalData | None = None) -> list[Projection]:
    """A fresh instance of every projection (those keeping personal data need ``personal``)."""
    return [cls(personal) for cls in PROJECTION_TYPES]


def get_projection(name: str, personal: PersonalData | None = None) -> Projection:
    """The projection called ``name``; ``KeyError`` lists the known names."""
    for cls in PROJECTION_TYPES:
        if cls.name == name:
            return cls(personal)
    raise KeyError(f"unknown projection {name!r}; known: {', '.join(PROJECTION_NAMES)}")


__all__ = [
    "PROJECTION_NAMES",
    "PROJECTION_TYPES",
    "PersonalData",
    "ProjectedEvent",
    "Projection",
    "Projector",
    "all_projections",
    "get_projection",
    "personal_of",
    "rebuild",
    "report_lag",
    "run_projector",
    "status",
    "store_reader",
    "table_reader",
]
