"""Sealing the personal fields of events with a subject's key (AES-256-GCM).

A sealed value replaces the field's JSON value in the stored event::

    {"$enc": "v1", "kid": "<subject key id>", "ct": "<base64url(nonce | ciphertext | tag)>"}

* The plaintext is the field's JSON value (so ``None``, strings, lists and the dict of
  ``PatientUpdated.changes`` all round-trip), padded with spaces to a multiple of
  32 bytes so a ciphertext only reveals a length bucket.
* The associated data binds the clinic, the stream, the event type and the field
  name: a sealed value copied to another place fails authentication.
* The nonce is random, or, when the append carries an idempotency key, synthetic:
  an HMAC of (key, idempotency key, associated data, plaintext). A retried append
  then produces byte-identical events, so the event store's idempotency fingerprint
  recognises it; a nonce repeats only for an identical (key, AAD, plaintext), which
  yields an identical ciphertext and reveals nothing new.
* ``None`` is not sealed (there is nothing to protect).

Sealed values are recognised by their shape (the shredding store refuses to store
an unsealed value of that shape), so data opens under the field names it was
stored with, before any upcaster runs.

Opening a value whose key was destroyed yields the field's *erased marker* (see
``erased_value``): ``None`` for optional fields, the default for defaulted ones,
``"[erased]"`` for required strings, ``{}``/``[]`` for required dicts/lists, so
old events still validate and aggregates still rehydrate. A tampered value, a wrong
key or associated data raise :class:`SealedFieldError`: corruption is never
mistaken for erasure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union, get_args, get_origin

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.events import EVENT_TYPES, DomainEvent

TAG = "$enc"
VERSION = "v1"
ERASED = "[erased]"
NONCE_BYTES = 12
KEY_BYTES = 32
PAD_TO = 32
_ENVELOPE_KEYS = frozenset({TAG, "kid", "ct"})
_AAD_LABEL = b"medicalcor/field/v1"
_NONCE_LABEL = b"medicalcor/field-nonce/v1"
_LENGTH = struct.Struct(">I").pack
_PLAIN_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode
"""``json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))``, the
same text, without building an encoder per call."""


class SealedFieldError(Exception):
    """A sealed value failed authentication, is malformed, or names an unknown key."""


@dataclass(frozen=True)
class SubjectKey:
    """One key of one subject; ``material`` is None once the key was destroyed."""

    key_id: str
    clinic_id: str
    subject_id: str
    material: bytes | None = field(default=None, repr=False)

    @property
    def destroyed(self) -> bool:
        return self.material is None

    @cached_property
    def _aead(self) -> AESGCM:
        if self.material is None:
            raise SealedFieldError(f"key {self.key_id} was destroyed")
        return AESGCM(self.material)

    @cached_property
    def _nonce_key(self) -> bytes:
        if self.material is None:
            raise SealedFieldError(f"key {self.key_id} was destroyed")
        return hmac.new(self.material, _NONCE_LABEL, hashlib.sha256).digest()


def _framed(*parts: str | bytes) -> bytes:
    """Length-prefixed concatenation: no two different part lists encode alike."""
    out: list[bytes] = []
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        out += (_LENGTH(len(raw)), raw)
    return b"".join(out)


def field_aad(clinic_id: str, stream_id: str, event_type: str, field_name: str) -> bytes:
    """The associated data of one field of one event: where the value belongs."""
    return _AAD_LABEL + _framed(clinic_id, stream_id, event_type, field_name)


def is_sealed(value: Any) -> bool:
    """Whether ``value`` has the shape of a sealed field."""
    return (
        isinstance(value, dict)
        and value.keys() == _ENVELOPE_KEYS
        and value[TAG] == VERSION
        and isinstance(value["kid"], str)
        and isinstance(value["ct"], str)
    )


def _encode_plain(value: Any) -> bytes:
    text = _PLAIN_JSON(value)
    raw = text.encode("utf-8", "surrogatepass")
    return raw + b" " * (-len(raw) % PAD_TO)  # JSON ignores trailing whitespace


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise SealedFieldError("sealed value is not base64url") from exc


def seal(
    key: SubjectKey, aad: bytes, value: Any, *, nonce_seed: str | None = None
) -> dict[str, str]:
    """Encrypt a JSON value; deterministic for a given ``nonce_seed`` (see module doc)."""
    plain = _encode_plain(value)
    if nonce_seed is None:
        nonce = os.urandom(NONCE_BYTES)
    else:
        mac = hmac.digest(key._nonce_key, _framed(nonce_seed, aad, plain), "sha256")
        nonce = mac[:NONCE_BYTES]
    sealed = key._aead.encrypt(nonce, plain, aad)
    return {TAG: VERSION, "kid": key.key_id, "ct": _b64(nonce + sealed)}


def open_sealed(key: SubjectKey, aad: bytes, envelope: Mapping[str, Any]) -> Any:
    """Decrypt a sealed value with a live key; ``SealedFieldError`` if it does not verify."""
    if envelope.get("kid") != key.key_id:
        raise SealedFieldError("sealed value names another key")
    raw = _unb64(str(envelope.get("ct", "")))
    if len(raw) < NONCE_BYTES + 16:
        raise SealedFieldError("sealed value is too short")
    try:
        plain = key._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealedFieldError(f"sealed value failed authentication ({key.key_id})") from exc
    return json.loads(plain.decode("utf-8", "surrogatepass"))


def erased_value(event_cls: type[DomainEvent], field_name: str) -> Any:
    """What a field reads as once its key is destroyed (valid for the event's schema)."""
    info = event_cls.model_fields.get(field_name)
    if info is None:
        return None
    if not info.is_required():
        return info.get_default(call_default_factory=True)
    annotation = info.annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType) and type(None) in get_args(annotation):
        return None
    base = origin or annotation
    if base is str:
        return ERASED
    if base is dict:
        return {}
    if base is list:
        return []
    return None


def seal_event_data(
    event_cls: type[DomainEvent],
    data: Mapping[str, Any],
    key: SubjectKey,
    *,
    clinic_id: str,
    stream_id: str,
    nonce_seed: str | None = None,
) -> dict[str, Any]:
    """``data`` with each non-None personal field sealed under ``key``."""
    out = dict(data)
    for name in event_cls.personal_fields:
        if out.get(name) is None:
            continue
        aad = field_aad(clinic_id, stream_id, event_cls.event_type(), name)
        out[name] = seal(key, aad, out[name], nonce_seed=nonce_seed)
    return out


def sealed_key_ids(data: Mapping[str, Any]) -> set[str]:
    """The key ids named by the sealed top-level values of ``data``."""
    return {value["kid"] for value in sealed_values(data).values()}


def sealed_values(data: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The sealed top-level values of ``data`` by field name (one pass: readers of many
    events find them once and reuse them for key lookups and opening)."""
    # isinstance first: most values are not dicts, and a call per value is what costs.
    return {n: v for n, v in data.items() if isinstance(v, dict) and is_sealed(v)}


def open_event_data(
    event_type: str,
    data: Mapping[str, Any],
    keys: Mapping[str, SubjectKey],
    *,
    clinic_id: str,
    stream_id: str,
    sealed: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``data`` with its sealed values opened, or erased where the key is destroyed.

    Sealed values are recognised by shape, under the field name they were stored
    with, so data of an older schema version opens before it is upcast. ``keys``
    maps key ids to keys (destroyed ones included); a key id it lacks raises
    ``SealedFieldError``, as does a value that fails authentication. ``sealed``:
    ``sealed_values(data)`` when the caller already has it.
    """
    if sealed is None:
        sealed = sealed_values(data)
    out = dict(data)
    if not sealed:
        return out
    event_cls = EVENT_TYPES.get(event_type)
    for name, envelope in sealed.items():
        key = keys.get(envelope["kid"])
        if key is None:
            raise SealedFieldError(f"unknown subject key {envelope['kid']!r}")
        if key.clinic_id != clinic_id:
            raise SealedFieldError("sealed value names a key of another clinic")
        if key.destroyed:
            out[name] = erased_value(event_cls, name) if event_cls is not None else None
            continue
        out[name] = open_sealed(key, field_aad(clinic_id, stream_id, event_type, name), envelope)
    return out


def new_key_material() -> bytes:
    """A fresh AES-256 key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)
