"""Custom search attributes set on every MedicalCor workflow at start.

ClinicId binds a workflow to its tenant (the gateway checks it on every status
request); WorkflowKind, LeadId and PatientId let operators list workflows in the
Web UI. None of them holds personal data: lead and patient ids are opaque.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CLINIC_ID = SearchAttributeKey.for_keyword("ClinicId")
WORKFLOW_KIND = SearchAttributeKey.for_keyword("WorkflowKind")
LEAD_ID = SearchAttributeKey.for_keyword("LeadId")
PATIENT_ID = SearchAttributeKey.for_keyword("PatientId")

ALL_KEYS: tuple[SearchAttributeKey[str], ...] = (CLINIC_ID, WORKFLOW_KIND, LEAD_ID, PATIENT_ID)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the attributes that are missing in ``namespace``; return those added.

    Idempotent: a second call adds nothing.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [k.name for k in ALL_KEYS if k.name not in existing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    return missing


def workflow_attributes(
    clinic_id: str, kind: str, *, lead_id: str | None = None, patient_id: str | None = None
) -> TypedSearchAttributes:
    """The typed search attributes of a workflow of ``clinic_id``."""
    pairs = [
        SearchAttributePair(CLINIC_ID, clinic_id),
        SearchAttributePair(WORKFLOW_KIND, kind),
    ]
    if lead_id:
        pairs.append(SearchAttributePair(LEAD_ID, lead_id))
    if patient_id:
        pairs.append(SearchAttributePair(PATIENT_ID, patient_id))
    return TypedSearchAttributes(pairs)
