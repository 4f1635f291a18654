"""Projection "messages": each WhatsApp message's status, findable by patient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.crypto.fields import ERASED
from adapters.crypto.keys import subject_id
from adapters.projections.base import Conn, ProjectedEvent, Projection, Row, Rows, Table
from adapters.projections.personal import value_aad

MESSAGES = Table(
    "rm_messages",
    ["clinic_id", "message_id"],
    [
        ("clinic_id", "text"),
        ("message_id", "text"),
        ("direction", "text"),
        ("patient_id", "text"),
        ("phone_sealed", "jsonb"),
        ("template_name", "text"),
        ("language", "text"),
        ("category", "text"),
        ("status", "text"),
        ("provider_message_id", "text"),
        ("error_code", "text"),
        ("error_message", "text"),
        ("queued_at", "timestamptz"),
        ("sent_at", "timestamptz"),
        ("delivered_at", "timestamptz"),
        ("read_at", "timestamptz"),
        ("failed_at", "timestamptz"),
        ("received_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ],
)
OUTBOUND = frozenset(
    {
        "WhatsAppMessageQueued",
        "WhatsAppMessageSent",
        "WhatsAppMessageDelivered",
        "WhatsAppMessageFailed",
    }
)
DELIVERY_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
_FORGET = """
UPDATE rm_messages SET phone_sealed = NULL
 WHERE (clinic_id, patient_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""


def inbound_id(provider_message_id: str) -> str:
    """The read model's id of an inbound message."""
    return f"inbound:{provider_message_id}"


def message_phone_aad(clinic_id: str, message_id: str) -> bytes:
    """Where a message's sealed phone belongs (its associated data)."""
    return value_aad(clinic_id, MESSAGES.name, message_id, "phone")


class MessagesProjection(Projection):
    """Each message's status; its phone sealed under the key of the patient or, for a
    message that names none, of the phone's conversation; dropped on erasure."""

    name = "messages"
    version = 2
    personal_data = True
    tables = (MESSAGES.name,)
    handles = OUTBOUND | {"WhatsAppMessageReceived", "PatientErased"}

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        messages = Rows(MESSAGES)
        await messages.load(
            conn,
            {
                (e.clinic_id, e.data["message_id"])
                for e in events
                if e.type in OUTBOUND and e.type != "WhatsAppMessageQueued"
            },
        )
        erased: list[tuple[str, str]] = []
        phones: list[tuple[Row, ProjectedEvent, str]] = []
        for e in events:
            if e.type == "PatientErased":
                erased.append((e.clinic_id, e.data["patient_id"]))
                continue
            row = _fold(messages, e)
            if row is not None:
                if e.type in _PHONE_OF:
                    phones.append((row, e, e.data[_PHONE_OF[e.type]]))
                row["updated_at"] = e.recorded_at
                messages.put(row)
        await self._seal_phones(phones)
        await messages.flush(conn)
        if erased:
            await conn.execute(_FORGET, [k[0] for k in erased], [k[1] for k in erased])

    async def _seal_phones(self, phones: list[tuple[Row, ProjectedEvent, str]]) -> None:
        sealer = self.personal.sealer()
        await sealer.load(e.key_id for _, e, _ in phones)
        for row, e, phone in phones:
            aad = message_phone_aad(e.clinic_id, row["message_id"])
            subject = self._subject(e.clinic_id, row["patient_id"], phone)
            row["phone_sealed"] = await sealer.seal(e.clinic_id, subject, e.key_id, aad, phone)

    def _subject(self, clinic_id: str, patient_id: str | None, phone: Any) -> str:
        """Whose data a message is (as ``adapters.shredding_store.subject_plan``): the
        patient it names, else the conversation of its phone."""
        if patient_id is not None:
            return subject_id("patient", patient_id)
        if not isinstance(phone, str) or phone == ERASED:
            return subject_id("conversation", "")  # never used: nothing to seal
        pseudonym = self.personal.pseudonymizer.pseudonym(clinic_id, "conversation", phone)
        return subject_id("conversation", pseudonym)


_PHONE_OF = {"WhatsAppMessageQueued": "to", "WhatsAppMessageReceived": "from_phone"}
"""The events that carry a message's phone, and the field that holds it."""


def _blank(e: ProjectedEvent, message_id: str, direction: str) -> Row:
    row: Row = {c: None for c in MESSAGES.columns}
    row.update(clinic_id=e.clinic_id, message_id=message_id, direction=direction)
    return row


def _fold(messages: Rows, e: ProjectedEvent) -> Row | None:
    d = e.data
    at = e.recorded_at
    if e.type == "WhatsAppMessageReceived":
        row = _blank(e, inbound_id(d["provider_message_id"]), "inbound")
        row.update(
            patient_id=d.get("patient_id"),
            status="received",
            provider_message_id=d["provider_message_id"],
            received_at=at,
        )
        return row
    if e.type == "WhatsAppMessageQueued":
        row = _blank(e, d["message_id"], "outbound")
        row.update(
            patient_id=d.get("patient_id"),
            template_name=d.get("template_name"),
            language=d.get("language"),
            category=d.get("category"),
            status="queued",
            queued_at=at,
        )
        return row
    known = messages.get((e.clinic_id, d["message_id"]))
    if known is None:
        return None  # a message's stream always starts with WhatsAppMessageQueued
    row = known
    if e.type == "WhatsAppMessageSent":
        row.update(provider_message_id=d["provider_message_id"], sent_at=at)
        _advance(row, "sent")
    elif e.type == "WhatsAppMessageDelivered":
        status = d.get("status", "delivered")
        row["read_at" if status == "read" else "delivered_at"] = at
        _advance(row, status)
    else:
        row.update(error_code=d["error_code"], error_message=d.get("error_message"), failed_at=at)
        if d.get("permanent", True):
            row["status"] = "failed"
    return row


def _advance(row: Row, status: str) -> None:
    current = DELIVERY_RANK.get(row["status"])
    if current is not None and DELIVERY_RANK[status] > current:
        row["status"] = status
