"""Crypto-shredding around any event store: personal fields sealed per data subject.

``CryptoShreddingEventStore(inner, keys, pseudonymizer)`` implements the
``EventStore`` port over another one (PostgreSQL in production, memory in unit
tests) and passes the same contract:

* on append, each event's ``personal_fields`` are sealed (``adapters.crypto.fields``)
  with the key of the subject the event is about (``subject_plan``), and the subject
  index (which subjects are linked, which streams hold whose data) is recorded BEFORE
  the events, so nothing is ever written that an erasure could not find;
* on read (``read_stream``, ``read_all``), sealed fields are opened, or read as their
  erased markers when the key was destroyed: aggregates still rehydrate with their
  ids, versions, statuses and counts;
* snapshots of streams that belong to a subject (patient, consent, lead,
  conversation) are sealed as a whole; one whose key was destroyed loads as None,
  so the aggregate is rebuilt from the (erased) events;
* idempotency: with an idempotency key the nonces are synthetic (derived from the key
  and the plaintext), so a retried append carries byte-identical ciphertexts and the
  inner store's fingerprint recognises it as a replay; other content still differs;
* caches of opened state (the command bus's aggregate cache): within
  :func:`track_subject_keys`, every live key that opens or seals a stream's values is
  noted per stream, and :meth:`CryptoShreddingEventStore.keys_live` tells whether they
  all still are, so a state read before an erasure is never served after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from adapters.crypto.fields import (
    SealedFieldError,
    SubjectKey,
    field_aad,
    is_sealed,
    open_event_data,
    open_sealed,
    seal,
    seal_event_data,
    sealed_values,
)
from adapters.crypto.keys import (
    STREAM_KEYS_SQL,
    Link,
    SubjectErased,
    SubjectKeyStore,
    subject_id,
)
from domain.errors import InvalidArguments
from domain.events import (
    ConsentRecorded,
    DomainEvent,
    EventMetadata,
    LeadConverted,
    LeadCreated,
    PatientRegistered,
    PatientUpdated,
    RecordedEvent,
    WhatsAppMessageQueued,
    WhatsAppMessageReceived,
)
from domain.ports import (
    AppendResult,
    EventStore,
    Pseudonymizer,
    Snapshot,
    StreamAppend,
    check_appends,
)
from domain.upcasting import Upcasters

log = logging.getLogger(__name__)

SNAPSHOT_TYPE = "$snapshot"
_SNAPSHOT_SUBJECT_KINDS = {
    "patient": "patient",
    "consent": "patient",
    "lead": "lead",
    "conversation": "conversation",
}
"""Stream type → subject kind of the aggregate id, for sealing whole snapshots."""


_TRACKED_KEYS: ContextVar[dict[str, set[str]] | None] = ContextVar(
    "medicalcor_tracked_subject_keys", default=None
)


@contextmanager
def track_subject_keys() -> Iterator[dict[str, set[str]]]:
    """Within the block, note per stream id the live keys that open or seal its values.

    A cache of state built from opened values (the command bus's aggregate cache) keeps
    these ids with the state and asks :meth:`CryptoShreddingEventStore.keys_live`
    before using it again: once any of them is destroyed, the state is read afresh
    (and sees the erased markers). Destroyed keys are not noted: what they sealed was
    already read as erased, and destruction is final.
    """
    tracked: dict[str, set[str]] = {}
    token = _TRACKED_KEYS.set(tracked)
    try:
        yield tracked
    finally:
        _TRACKED_KEYS.reset(token)


def _note_keys(stream_id: str, key_ids: Collection[str]) -> None:
    tracked = _TRACKED_KEYS.get()
    if tracked is not None and key_ids:
        tracked.setdefault(stream_id, set()).update(key_ids)


@dataclass
class Plan:
    """How one event is stored: the subject that seals it, and the links it implies."""

    subject: str | None = None
    links: list[Link] = field(default_factory=list)


def subject_plan(
    event: DomainEvent, stream_id: str, pseudonymizer: Pseudonymizer, clinic_id: str
) -> Plan:
    """Which subject an event's personal fields belong to, and what it links.

    Patient, consent, appointment and message events with a patient id → the
    patient; ``LeadCreated`` → the lead; a message without a patient → the
    conversation of its phone (same pseudonym as the conversation stream). A phone
    seen with a patient links the patient to that phone's lead and conversation, so
    erasing the patient reaches them.
    """

    def phone_links(patient: str, phone: Any) -> list[Link]:
        if not isinstance(phone, str) or not phone:
            return []
        return [
            (
                patient,
                "subject",
                subject_id("lead", pseudonymizer.pseudonym(clinic_id, "lead", phone)),
            ),
            (patient, "subject", conversation_of(phone)),
        ]

    def conversation_of(phone: str) -> str:
        return subject_id("conversation", pseudonymizer.pseudonym(clinic_id, "conversation", phone))

    plan = Plan()
    patient_id = getattr(event, "patient_id", None)
    patient = subject_id("patient", patient_id) if isinstance(patient_id, str) else None
    match event:
        case LeadCreated():
            plan.subject = subject_id("lead", event.lead_id)
        case PatientRegistered() | PatientUpdated() | ConsentRecorded() | LeadConverted():
            plan.subject = subject_id("patient", event.patient_id)
            plan.links += _patient_links(event, plan.subject, phone_links)
        case WhatsAppMessageQueued():
            plan.subject = patient or conversation_of(event.to)
            if patient:
                plan.links += phone_links(patient, event.to)
        case WhatsAppMessageReceived():
            conversation = conversation_of(event.from_phone)
            plan.subject = patient or conversation
            if patient:
                plan.links += phone_links(patient, event.from_phone)
            if event.lead_id:
                plan.links.append((subject_id("lead", event.lead_id), "subject", conversation))
        case _ if event.personal_fields:
            plan.subject = patient or subject_id("stream", stream_id)
    if plan.subject is not None:
        plan.links.append((plan.subject, "stream", stream_id))
    if patient is not None:
        plan.links.append((patient, "stream", stream_id))
    return plan


def _patient_links(
    event: PatientRegistered | PatientUpdated | ConsentRecorded | LeadConverted,
    patient: str,
    phone_links: Callable[[str, Any], list[Link]],
) -> list[Link]:
    """A patient's links to its lead and to the lead and conversation of each phone."""
    match event:
        case PatientRegistered():
            links = phone_links(patient, event.phone)
            if event.lead_id:
                links.append((patient, "subject", subject_id("lead", event.lead_id)))
            return links
        case PatientUpdated():
            return phone_links(patient, event.changes.get("phone"))
        case ConsentRecorded():
            return phone_links(patient, event.phone)
        case LeadConverted():
            return [(patient, "subject", subject_id("lead", event.lead_id))]


@cache
def sealed_class(event_cls: type[DomainEvent]) -> type[DomainEvent]:
    """A look-alike of ``event_cls`` whose fields hold any JSON (sealed values included).

    Same type name and schema version, so the inner store records it as the real
    event; it is never registered (``stream_type`` is empty while the class is built).
    """
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": f"sealed_class.{event_cls.__name__}",
        "__annotations__": {name: Any for name in event_cls.model_fields},
        "stream_type": "",
        "schema_version": event_cls.schema_version,
    }
    sealed: type[DomainEvent] = type(event_cls.__name__, (DomainEvent,), namespace)
    sealed.stream_type = event_cls.stream_type  # after __init_subclass__: not registered
    return sealed


def _refuse_lookalikes(event: DomainEvent, data: dict[str, Any]) -> None:
    """Only sealed values may have the sealed shape: reads recognise them by it."""
    for name, value in data.items():
        if name not in event.personal_fields and is_sealed(value):
            raise InvalidArguments(
                f"{name} has the shape of an encrypted value",
                errors=[{"path": name, "message": "reserved shape", "expected": "other data"}],
            )


def snapshot_subject(stream_id: str) -> str | None:
    """The subject whose key seals a stream's snapshots (None: nothing personal in them)."""
    stream_type, _, ident = stream_id.partition("-")
    kind = _SNAPSHOT_SUBJECT_KINDS.get(stream_type)
    return subject_id(kind, ident) if kind and ident else None


class CryptoShreddingEventStore:
    """The EventStore port, sealing personal fields per subject (see module doc)."""

    def __init__(
        self,
        inner: EventStore,
        keys: SubjectKeyStore,
        pseudonymizer: Pseudonymizer,
        *,
        upcasters: Upcasters | None = None,
    ) -> None:
        self.inner = inner
        self.keys = keys
        self.pseudonymizer = pseudonymizer
        self.upcasters = upcasters
        # A stream and its keys in one statement, when both live in one PostgreSQL.
        self._reads_keys_along = callable(getattr(inner, "read_stream_with", None)) and callable(
            getattr(keys, "accept_rows", None)
        )

    # --- append ---------------------------------------------------------------------

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Seal, index the subjects, then append through the inner store."""
        check_appends(appends)
        links: list[Link] = []
        sealed: list[StreamAppend] = []
        keys: dict[str, SubjectKey] = {}
        index = 0
        for a in appends:
            events: list[DomainEvent] = []
            for event in a.events:
                plan = subject_plan(event, a.stream_id, self.pseudonymizer, clinic_id)
                links += plan.links
                seed = None if idempotency_key is None else f"{idempotency_key}\x1f{index}"
                events.append(await self._seal(clinic_id, a.stream_id, event, plan, keys, seed))
                index += 1
            sealed.append(a.model_copy(update={"events": tuple(events)}))
        await self.keys.link(clinic_id, links)
        return await self.inner.append(
            clinic_id, sealed, metadata=metadata, idempotency_key=idempotency_key
        )

    async def _seal(
        self,
        clinic_id: str,
        stream_id: str,
        event: DomainEvent,
        plan: Plan,
        keys: dict[str, SubjectKey],
        seed: str | None,
    ) -> DomainEvent:
        data = event.data()
        _refuse_lookalikes(event, data)
        if plan.subject is None or all(data.get(n) is None for n in event.personal_fields):
            return event
        key = keys.get(plan.subject)
        if key is None:
            key = keys[plan.subject] = await self.keys.encryption_key(clinic_id, plan.subject)
        _note_keys(stream_id, (key.key_id,))
        cls = type(event)
        sealed = seal_event_data(
            cls, data, key, clinic_id=clinic_id, stream_id=stream_id, nonce_seed=seed
        )
        return sealed_class(cls).model_construct(**sealed)

    # --- read -----------------------------------------------------------------------

    async def read_stream(
        self, clinic_id: str, stream_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The stream's events, personal fields opened (or erased)."""
        if not self._reads_keys_along:
            return await self.open(
                await self.inner.read_stream(clinic_id, stream_id, after_version=after_version)
            )
        keys: Any = self.keys
        generation = keys.generation  # before the read: see accept_rows
        events, rows = await self.inner.read_stream_with(  # type: ignore[attr-defined]
            clinic_id, stream_id, STREAM_KEYS_SQL, after_version=after_version
        )
        found = [sealed_values(e.data) for e in events]
        return self._opened(events, found, keys.accept_rows(rows, generation))

    async def read_all(self, *, after_position: int, limit: int) -> list[RecordedEvent]:
        """Events in global order, personal fields opened (or erased)."""
        return await self.open(
            await self.inner.read_all(after_position=after_position, limit=limit)
        )

    async def open(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """Open the sealed values of stored events (one key lookup for the batch), then upcast."""
        found = [sealed_values(e.data) for e in events]
        return self._opened(events, found, await self.keys_for(found))

    def _opened(
        self,
        events: list[RecordedEvent],
        found: list[dict[str, dict[str, str]]],
        keys: dict[str, SubjectKey],
    ) -> list[RecordedEvent]:
        if keys:
            self._what_reads_prove(events, found, keys)
        return [self.open_event(e, keys, sealed) for e, sealed in zip(events, found, strict=True)]

    def _what_reads_prove(
        self,
        events: Sequence[RecordedEvent],
        found: Sequence[Mapping[str, Mapping[str, Any]]],
        keys: Mapping[str, SubjectKey],
    ) -> None:
        """Note what stored sealed values prove.

        * A value sealed with a subject's key means that subject was linked to the
          value's stream before the event was appended (``append`` records an event's
          links first, its sealing subject's among them): the key store is told, so the
          next append to the stream does not insert links the index already holds.
        * Within :func:`track_subject_keys`, the live keys that opened each stream.
        """
        tracking = _TRACKED_KEYS.get() is not None
        linked: dict[str, set[Link]] = {}
        for e, sealed in zip(events, found, strict=True):
            if not sealed:
                continue
            ids = {v["kid"] for v in sealed.values()}
            used = [keys[k] for k in ids if k in keys]
            if tracking:
                _note_keys(e.stream_id, [k.key_id for k in used if not k.destroyed])
            links = linked.setdefault(e.clinic_id, set())
            links.update((k.subject_id, "stream", e.stream_id) for k in used)
        for clinic_id, links in linked.items():
            self.keys.known_links(clinic_id, links)

    async def keys_for(
        self, found: Iterable[Mapping[str, Mapping[str, Any]]]
    ) -> dict[str, SubjectKey]:
        """The keys (destroyed ones included) named by the sealed values of many events
        (each ``sealed_values(data)``), in one lookup."""
        wanted = {v["kid"] for sealed in found for v in sealed.values()}
        return await self.keys.get_keys(wanted) if wanted else {}

    def open_data(
        self,
        event_type: str,
        schema_version: int,
        data: dict[str, Any],
        sealed: Mapping[str, Mapping[str, Any]],
        keys: Mapping[str, SubjectKey],
        *,
        clinic_id: str,
        stream_id: str,
    ) -> tuple[dict[str, Any], int]:
        """Stored data opened (or erased) and upcast, as ``read_all`` hands it out.

        For readers of the events table that skip building ``RecordedEvent``s (the
        projector): ``sealed`` is ``sealed_values(data)``, ``keys`` from ``keys_for``.
        Returns the data and its schema version (``data`` itself when nothing changed).
        """
        if sealed:
            data = open_event_data(
                event_type, data, keys, clinic_id=clinic_id, stream_id=stream_id, sealed=sealed
            )
        if self.upcasters is not None:
            return self.upcasters.upcast(event_type, schema_version, data)
        return data, schema_version

    async def keys_live(self, clinic_id: str, key_ids: Collection[str]) -> bool:
        """Whether every one of these keys exists and is not destroyed (as this process
        knows it: the key store's cache, dropped on every replica when a key is destroyed)."""
        keys = await self.keys.get_keys(key_ids)
        return all(k in keys and not keys[k].destroyed for k in key_ids)

    def open_event(
        self, e: RecordedEvent, keys: Mapping[str, SubjectKey], sealed: Mapping[str, Any]
    ) -> RecordedEvent:
        """A stored event opened (or erased) and upcast; ``sealed`` and ``keys`` as for
        :meth:`open_data`. The event itself when nothing changed."""
        data, version = self.open_data(
            e.event_type,
            e.schema_version,
            e.data,
            sealed,
            keys,
            clinic_id=e.clinic_id,
            stream_id=e.stream_id,
        )
        if data is e.data and version == e.schema_version:
            return e
        return e.model_copy(update={"data": data, "schema_version": version})

    async def aclose(self) -> None:
        """Close the inner store if it has anything to close (e.g. pending wake-ups)."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    # --- snapshots --------------------------------------------------------------------

    async def load_snapshot(self, clinic_id: str, stream_id: str) -> Snapshot | None:
        """The snapshot, opened; None when its subject's key was destroyed."""
        snap = await self.inner.load_snapshot(clinic_id, stream_id)
        if snap is None or not is_sealed(snap.state):
            return snap
        kid = snap.state["kid"]
        key = (await self.keys.get_keys([kid])).get(kid)
        if key is None:
            raise SealedFieldError(f"unknown subject key {kid!r}")
        if key.destroyed:
            return None  # rebuilt from the events, which read as erased
        _note_keys(stream_id, (kid,))
        state = open_sealed(key, _snapshot_aad(clinic_id, snap), snap.state)
        return snap.model_copy(update={"state": state})

    async def save_snapshot(self, clinic_id: str, snapshot: Snapshot) -> None:
        """Seal the state of a subject's stream; skip subjects that were erased."""
        subject = snapshot_subject(snapshot.stream_id)
        if subject is None:
            await self.inner.save_snapshot(clinic_id, snapshot)
            return
        try:
            key = await self.keys.encryption_key(clinic_id, subject)
        except SubjectErased:
            log.info("no snapshot of %s: its subject was erased", snapshot.stream_id)
            return
        state = seal(key, _snapshot_aad(clinic_id, snapshot), snapshot.state)
        await self.inner.save_snapshot(clinic_id, snapshot.model_copy(update={"state": state}))


def _snapshot_aad(clinic_id: str, snapshot: Snapshot) -> bytes:
    return field_aad(clinic_id, snapshot.stream_id, SNAPSHOT_TYPE, f"state@{snapshot.version}")
