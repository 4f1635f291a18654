"""Personal data in the read models: keyed hashes to find people, sealed values to show them.

No read-model column holds a personal value in clear:

* A value used to FIND someone (a patient's or a consent's phone, a patient's e-mail)
  is stored as the clinic's keyed pseudonym of its normal form (HMAC-SHA256 under the
  server secret, ``adapters.pseudonym``; phones in E.164, e-mails in lower case).
  Equal inputs match, nothing reads back, and another clinic or another secret gives
  an unrelated hash. The lookup kinds differ from the lead and conversation
  pseudonyms, so a lookup column never equals an id of another stream.
* A value only SHOWN (a patient's profile, a lead's or a message's phone, a consent's
  IP address) is sealed (AES-256-GCM, ``adapters.crypto.fields``) with the key of the
  data subject whose event carried it, the same key that sealed it in the event
  store, bound to its table, row and column. Reading it needs that key: once an
  erasure destroys the key the value reads as erased, whether or not the projection
  has applied ``PatientErased`` yet, and a rebuild can only write the erased marker.

A sealed column holds the envelope, ``"[erased]"`` (``ERASED``) when the value was
already erased when it was projected, or NULL when there was no value. Nonces are
synthetic (derived from the key, the place and the value), so a rebuild writes the
same bytes as the live projection did.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from adapters.crypto.fields import (
    ERASED,
    SealedFieldError,
    SubjectKey,
    is_sealed,
    open_sealed,
    seal,
)
from adapters.crypto.keys import SubjectErased, SubjectKeyStore
from domain.errors import ExecutionError, InvalidArguments
from domain.phones import normalize_phone
from domain.ports import Pseudonymizer

PHONE_LOOKUP = "lookup:phone"
EMAIL_LOOKUP = "lookup:email"
_AAD_LABEL = b"medicalcor/read-model/v1"
_NONCE_SEED = "medicalcor/read-model"
_LENGTH = struct.Struct(">I").pack


def normal_phone(phone: str) -> str:
    """The form phones are hashed in: E.164 when the number is valid, else as given."""
    try:
        return normalize_phone(phone)
    except InvalidArguments:
        return phone.strip()


def normal_email(email: str) -> str:
    """The form e-mails are hashed in: trimmed, lower case (lookups ignore case)."""
    return email.strip().lower()


def lookup_hash(pseudonymizer: Pseudonymizer, clinic_id: str, kind: str, value: Any) -> str | None:
    """The keyed hash of a phone (``PHONE_LOOKUP``) or e-mail (``EMAIL_LOOKUP``).

    None for a missing or erased value: an erased person can no longer be found.
    """
    if value is None or value == ERASED:
        return None
    if not isinstance(value, str):
        raise SealedFieldError("a lookup value is not plain text: read events through the store")
    normal = normal_phone(value) if kind == PHONE_LOOKUP else normal_email(value)
    return pseudonymizer.pseudonym(clinic_id, kind, normal) if normal else None


def _framed(parts: Iterable[str]) -> bytes:
    out: list[bytes] = []
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        out += (_LENGTH(len(raw)), raw)
    return b"".join(out)


def value_aad(clinic_id: str, table: str, *where: str) -> bytes:
    """Associated data of a sealed read-model value: clinic, table, row key, column."""
    return _AAD_LABEL + _framed((clinic_id, table, *where))


def wanted_key_ids(stored: Iterable[Any]) -> set[str]:
    """The key ids named by sealed values among ``stored``."""
    return {v["kid"] for v in stored if is_sealed(v)}


class KeyRing:
    """The subject keys a batch or a read needs, fetched from the key store once."""

    def __init__(self, keys: SubjectKeyStore) -> None:
        self.keys = keys
        self._known: dict[str, SubjectKey] = {}

    async def load(self, key_ids: Iterable[str | None]) -> None:
        missing = {k for k in key_ids if k is not None and k not in self._known}
        if missing:
            self._known.update(await self.keys.get_keys(missing))

    async def get(self, key_id: str) -> SubjectKey:
        key = self._known.get(key_id)
        if key is not None:
            return key
        await self.load([key_id])
        key = self._known.get(key_id)
        if key is None:
            raise SealedFieldError(f"unknown subject key {key_id!r}")
        return key

    async def open(self, clinic_id: str, aad: bytes, stored: Any) -> Any:
        """A stored sealed column as its value: None, ``ERASED``, or the opened value."""
        if stored is None or stored == ERASED:
            return stored
        if not is_sealed(stored):
            raise SealedFieldError("a read-model value is not sealed")
        key = await self.get(stored["kid"])
        if key.clinic_id != clinic_id:
            raise SealedFieldError("sealed value names a key of another clinic")
        if key.destroyed:
            return ERASED
        return open_sealed(key, aad, stored)


async def open_all(
    keys: SubjectKeyStore | None, clinic_id: str, items: Sequence[tuple[bytes, Any]]
) -> list[Any]:
    """Open ``(aad, stored)`` pairs of one clinic with one key lookup (see ``KeyRing.open``).

    Without a key store only empty and erased values can be read: a sealed one is an
    ``ExecutionError`` (the query bus was built without ``keys``), never a silent None.
    """
    if keys is None:
        if any(is_sealed(stored) for _, stored in items):
            raise ExecutionError("reading personal fields needs the subject key store")
        return [stored for _, stored in items]
    ring = KeyRing(keys)
    await ring.load(wanted_key_ids(stored for _, stored in items))
    return [await ring.open(clinic_id, aad, stored) for aad, stored in items]


class LookupMemo:
    """Lookup hashes already computed, by a digest of the value they hash.

    Normalising a phone (``phonenumbers``: parse, validate, format) costs ~50 us, and
    several projections hash the same phone (patients, consents, each profile change).
    The memo holds no personal value: entries are keyed by a keyed digest under a
    random key of this process (never stored), and hold the same pseudonyms the read
    models store. It caches a deterministic function, so it never changes an answer
    (an erased person's phone hashes alike with or without it); bounded, emptied when
    full. The bound is a few batches' worth: the gain is within a batch and across the
    projections of one batch, which a larger memo does not add to.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._digest_key = os.urandom(32)
        self._hashes: dict[tuple[str, bytes], str | None] = {}

    def get(self, clinic_id: str, value: str, compute: Callable[[], str | None]) -> str | None:
        digest = hashlib.blake2b(
            value.encode("utf-8", "surrogatepass"), key=self._digest_key, digest_size=16
        ).digest()
        memo_key = (clinic_id, digest)
        try:
            return self._hashes[memo_key]
        except KeyError:
            pass
        found = compute()
        if len(self._hashes) >= self.max_entries:
            self._hashes.clear()
        self._hashes[memo_key] = found
        return found


class PersonalData:
    """What a projection holding personal data is given: the pseudonymizer for lookup
    hashes and the subject key store for sealing values to show."""

    def __init__(self, pseudonymizer: Pseudonymizer, keys: SubjectKeyStore) -> None:
        self.pseudonymizer = pseudonymizer
        self.keys = keys
        self._phone_hashes = LookupMemo()

    def phone_hash(self, clinic_id: str, phone: Any) -> str | None:
        if not isinstance(phone, str) or phone == ERASED:
            return lookup_hash(self.pseudonymizer, clinic_id, PHONE_LOOKUP, phone)
        return self._phone_hashes.get(
            clinic_id,
            phone,
            lambda: lookup_hash(self.pseudonymizer, clinic_id, PHONE_LOOKUP, phone),
        )

    def email_hash(self, clinic_id: str, email: Any) -> str | None:
        return lookup_hash(self.pseudonymizer, clinic_id, EMAIL_LOOKUP, email)

    def sealer(self) -> Sealer:
        """A sealer for one batch (its keys are fetched once)."""
        return Sealer(self.keys)


class Sealer(KeyRing):
    """Seals a batch's values under the key that sealed them in the event store."""

    async def seal(
        self, clinic_id: str, subject: str, key_id: str | None, aad: bytes, value: Any
    ) -> Any:
        """``value`` as its sealed column: None, ``ERASED`` or the envelope.

        ``key_id`` is the key that sealed the value's event (``ProjectedEvent.key_id``).
        An event that was stored unsealed (nothing personal in it, or a store without
        crypto-shredding) has none: then the subject's live key is used, and a subject
        that was erased meanwhile gets the erased marker. A destroyed key is never
        replaced by a new one here, so a value read before an erasure is never sealed
        again under a key that outlives it.
        """
        if value is None or value == ERASED:
            return value
        _refuse_sealed(value)
        if key_id is not None:
            key = await self.get(key_id)
        else:
            try:
                key = await self.keys.encryption_key(clinic_id, subject)
            except SubjectErased:
                return ERASED
        if key.destroyed:
            return ERASED
        if key.clinic_id != clinic_id:
            raise SealedFieldError("an event's key belongs to another clinic")
        return seal(key, aad, value, nonce_seed=_NONCE_SEED)


def _refuse_sealed(value: Any) -> None:
    """Sealed event data reaching a projection means it read the events table directly."""
    values = value.values() if isinstance(value, Mapping) else [value]
    if is_sealed(value) or any(is_sealed(v) for v in values):
        raise SealedFieldError("projected data is still sealed: read events through the store")
