"""AES-256-GCM payload encryption for Temporal, with key rotation.

Every payload leaving the process (workflow inputs, activity arguments and
results, query answers, failure details) is encrypted, so the Temporal server's
history never holds patient data in plain text. The key id travels in the
payload's metadata: the first configured key encrypts, every configured key
decrypts, so keys can be rotated by prepending a new one and dropping the old one
only after histories encrypted with it are gone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(Exception):
    """A payload names a key this process does not hold, or fails authentication."""


def key_id_of(key: bytes) -> str:
    """A stable, non-secret id for a key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(b"medicalcor-payload-key\x00" + key).hexdigest()[:16]


def derive_key(secret: str) -> bytes:
    """A 256-bit payload key derived from the application secret (HKDF-SHA256).

    Used when no ``MEDICALCOR_PAYLOAD_KEYS`` are configured, so payloads are never
    stored in clear even in development.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medicalcor/payloads")
    return hkdf.derive(secret.encode())


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key; decrypts with whichever key the payload names."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one payload key is required")
        for key in keys:
            if len(key) != 32:
                raise ValueError("payload keys must be 32 bytes (AES-256)")
        self._ciphers = {key_id_of(k): AESGCM(k) for k in keys}
        self._current = key_id_of(keys[0])

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each serialized payload; the key id is bound as associated data."""
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt payloads this codec encrypted; pass others through unchanged."""
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._current.encode()
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, "encryption-cipher": CIPHER, KEY_ID: key_id},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload encrypted with unknown key {key_id!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except Exception as exc:  # InvalidTag: tampered data or wrong key material
            raise PayloadKeyError(f"payload failed authentication with key {key_id!r}") from exc
        return Payload.FromString(plain)


def codec_for(keys: Sequence[bytes], secret: str) -> EncryptionCodec:
    """The codec for configured keys, or for the key derived from ``secret`` if none."""
    return EncryptionCodec(list(keys) or [derive_key(secret)])
