"""Keyed pseudonyms (HMAC-SHA256) for looking people up without their identifiers.

The same (clinic, kind, value) always maps to the same pseudonym under one secret;
another clinic, another kind or another secret gives an unrelated one, and nobody
without the secret can go back from a pseudonym to the value. Lead ids are the
pseudonym of the lead's phone, so this must agree with ``domain.memory``'s
in-memory pseudonymizer: same message layout, same length.
"""

from __future__ import annotations

import hashlib
import hmac

MIN_SECRET_BYTES = 16
PSEUDONYM_HEX_CHARS = 32


class HmacPseudonymizer:
    """``domain.ports.Pseudonymizer`` with HMAC-SHA256 under a server-side secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the pseudonym secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def pseudonym(self, clinic_id: str, kind: str, value: str) -> str:
        """A stable, irreversible id for ``value`` of ``kind`` in ``clinic_id``."""
        message = "\x1f".join((clinic_id, kind, value)).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_HEX_CHARS]
