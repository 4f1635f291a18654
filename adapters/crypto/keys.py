"""Subject keys: one AES-256 key per data subject and clinic, destroyed on erasure.

``SubjectKeyStore`` is what the shredding event store and the GDPR service need;
``PostgresSubjectKeyStore`` keeps the keys in ``subject_keys`` (migration 0033),
``InMemorySubjectKeyStore`` in process memory (unit tests, same behaviour).

Key storage. Each key is wrapped (AES-256-GCM, associated data = key id, clinic and
subject) with a master key derived by HKDF from ``MEDICALCOR_SECRET_KEY``. Wrapping
matters because erasure cannot reach every copy of the table: UPDATE leaves the old
bytes in dead tuples, the WAL and every backup taken before the erasure. Those
remnants are useless without the master secret, and after a master rotation
(``rewrap`` under a new secret, old backups expired, old secret discarded) they are
useless for good. Keys in clear would make a database dump alone enough to read
every event, erased or not.

Destroying a subject's keys nulls the wrapped bytes and keeps the row (who, when,
why). A ``patient:`` subject is never given a key again (a new key would make data
about an erased person readable); ``lead:`` and ``conversation:`` subjects are keyed by
a pseudonym of a phone number, and the person may legitimately come back, so they get
a new key generation while old events stay erased.

Caching and revocation. Live keys are cached in process only while this process
LISTENs on ``subject_keys_changed`` (``start``): ``destroy`` (what ``erase_patient``
calls) notifies in its own transaction and every replica drops its cached live keys
when the notification arrives (milliseconds; until then a replica can still open
values sealed with the key). A lost LISTEN connection drops them too and switches
caching off until it is back. Without the listener every read asks the table (one
query per page of events), so a destruction is effective at once.
The caches are bounded (``adapters.crypto.cache.TtlCache``): live keys expire after
``cache_ttl_s`` and are evicted, at most ``cache_max_entries`` per cache, the oldest
first. Destroyed keys are final, so they are kept longer (``DESTROYED_TTL_S``), under
the same size bound.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.crypto.cache import TtlCache
from adapters.crypto.fields import TAG, VERSION, SubjectKey, new_key_material
from adapters.postgres.listener import InvalidationListener
from domain.errors import NotFound

log = logging.getLogger(__name__)

CHANNEL = "subject_keys_changed"
LinkKind = Literal["subject", "stream"]
Link = tuple[str, LinkKind, str]
"""``(subject_id, kind, target)``: a linked subject, or a stream holding its data."""

_NONCE = 12
_MAX_SEEN_LINKS = 100_000
DEFAULT_CACHE_MAX_ENTRIES = 10_000
DESTROYED_TTL_S = 3600.0


def subject_id(kind: str, ident: str) -> str:
    """A subject id: ``patient:<id>``, ``lead:<id>``, ``conversation:<id>``."""
    return f"{kind}:{ident}"


def renewable(subject: str) -> bool:
    """Whether a subject gets a new key after erasure (not for patients, see module doc)."""
    return not subject.startswith("patient:")


class SubjectErased(NotFound):
    """Personal data about an erased patient cannot be recorded again."""

    def __init__(self, clinic_id: str, subject: str) -> None:
        kind, _, ident = subject.partition(":")
        super().__init__(f"{kind} {ident!r} was erased", id=ident, erased=True)
        self.clinic_id = clinic_id
        self.subject = subject


@dataclass(frozen=True)
class KeyRecord:
    """What is known about one key without its material (the proof of erasure)."""

    key_id: str
    subject_id: str
    created_at: datetime
    destroyed_at: datetime | None = None
    destroyed_by: str | None = None
    destroy_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "subjectId": self.subject_id,
            "createdAt": self.created_at.isoformat(),
            "destroyedAt": self.destroyed_at.isoformat() if self.destroyed_at else None,
            "destroyedBy": self.destroyed_by,
            "reason": self.destroy_reason,
        }


class SubjectKeyStore(Protocol):
    """Keys per (clinic, subject), their destruction, and the subject index."""

    async def encryption_key(self, clinic_id: str, subject: str) -> SubjectKey:
        """The subject's live key, created if it has none (``SubjectErased`` if it may not)."""
        ...

    async def get_keys(self, key_ids: Collection[str]) -> dict[str, SubjectKey]:
        """Keys by id (destroyed ones with ``material=None``); unknown ids are left out."""
        ...

    async def destroy(
        self, clinic_id: str, subjects: Collection[str], *, actor: str, reason: str | None
    ) -> list[KeyRecord]:
        """Destroy every key of the subjects; returns the keys destroyed now."""
        ...

    async def link(self, clinic_id: str, links: Iterable[Link]) -> None:
        """Record links (idempotent)."""
        ...

    def known_links(self, clinic_id: str, links: Iterable[Link]) -> None:
        """Links a read proved recorded: ``link`` may skip them (an optimisation only)."""
        ...

    async def reachable(self, clinic_id: str, subject: str) -> set[str]:
        """The subject and every subject linked from it, transitively."""
        ...

    async def streams_of(self, clinic_id: str, subjects: Collection[str]) -> set[str]:
        """Streams recorded as holding data of any of the subjects."""
        ...

    async def records(self, clinic_id: str, subjects: Collection[str]) -> list[KeyRecord]:
        """Every key (live or destroyed) of the subjects, oldest first."""
        ...


def master_key_from_secret(secret: str) -> bytes:
    """The 256-bit key-wrapping key derived from the application secret (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medicalcor/subject-keys")
    return hkdf.derive(secret.encode())


def master_key_id(master: bytes) -> str:
    """A stable, non-secret id of a master key."""
    return hashlib.sha256(b"medicalcor-subject-master\x00" + master).hexdigest()[:16]


def _new_key_id() -> str:
    return "sk_" + secrets.token_hex(12)


def _wrap_aad(key_id: str, clinic_id: str, subject: str) -> bytes:
    return "\x1f".join((key_id, clinic_id, subject)).encode()


class _Seen:
    """Links already recorded by this process (bounded: forgetting only costs a query)."""

    def __init__(self) -> None:
        self._links: set[tuple[str, str, str, str]] = set()

    def new(self, clinic_id: str, links: Iterable[Link]) -> list[Link]:
        fresh = sorted({link for link in links if (clinic_id, *link) not in self._links})
        return fresh

    def add(self, clinic_id: str, links: Iterable[Link]) -> None:
        if len(self._links) > _MAX_SEEN_LINKS:
            self._links.clear()
        self._links.update((clinic_id, *link) for link in links)


# --- in memory --------------------------------------------------------------------------


@dataclass
class _MemKey:
    key: SubjectKey
    record: KeyRecord


class InMemorySubjectKeyStore:
    """The key store in process memory (same rules as PostgreSQL; for unit tests)."""

    def __init__(self) -> None:
        self._keys: dict[str, _MemKey] = {}
        self._links: set[tuple[str, str, str, str]] = set()
        self._lock = asyncio.Lock()

    async def encryption_key(self, clinic_id: str, subject: str) -> SubjectKey:
        async with self._lock:
            mine = [k for k in self._keys.values() if self._is(k, clinic_id, subject)]
            live = [k.key for k in mine if not k.key.destroyed]
            if live:
                return live[0]
            if mine and not renewable(subject):
                raise SubjectErased(clinic_id, subject)
            key = SubjectKey(_new_key_id(), clinic_id, subject, new_key_material())
            record = KeyRecord(key.key_id, subject, datetime.now(UTC))
            self._keys[key.key_id] = _MemKey(key, record)
            return key

    async def get_keys(self, key_ids: Collection[str]) -> dict[str, SubjectKey]:
        return {k: self._keys[k].key for k in key_ids if k in self._keys}

    async def destroy(
        self, clinic_id: str, subjects: Collection[str], *, actor: str, reason: str | None
    ) -> list[KeyRecord]:
        async with self._lock:
            now = datetime.now(UTC)
            done: list[KeyRecord] = []
            for subject in sorted(set(subjects)):
                mine = [k for k in self._keys.values() if self._is(k, clinic_id, subject)]
                if not mine:  # a tombstone: the subject can never get a key
                    tomb = SubjectKey(_new_key_id(), clinic_id, subject, None)
                    record = KeyRecord(tomb.key_id, subject, now, now, actor, reason)
                    self._keys[tomb.key_id] = _MemKey(tomb, record)
                for entry in mine:
                    if entry.key.destroyed:
                        continue
                    entry.key = replace(entry.key, material=None)
                    entry.record = replace(
                        entry.record, destroyed_at=now, destroyed_by=actor, destroy_reason=reason
                    )
                    done.append(entry.record)
            return done

    async def link(self, clinic_id: str, links: Iterable[Link]) -> None:
        self._links.update((clinic_id, *link) for link in links)

    def known_links(self, clinic_id: str, links: Iterable[Link]) -> None:
        """Nothing to skip: linking in memory costs nothing."""

    async def reachable(self, clinic_id: str, subject: str) -> set[str]:
        found, frontier = {subject}, [subject]
        while frontier:
            current = frontier.pop()
            for c, s, kind, target in self._links:
                if (c, s, kind) == (clinic_id, current, "subject") and target not in found:
                    found.add(target)
                    frontier.append(target)
        return found

    async def streams_of(self, clinic_id: str, subjects: Collection[str]) -> set[str]:
        return {
            t
            for c, s, kind, t in self._links
            if c == clinic_id and s in subjects and kind == "stream"
        }

    async def records(self, clinic_id: str, subjects: Collection[str]) -> list[KeyRecord]:
        mine = [
            k.record
            for k in self._keys.values()
            if k.key.clinic_id == clinic_id and k.key.subject_id in subjects
        ]
        return sorted(mine, key=lambda r: (r.created_at, r.key_id))

    @staticmethod
    def _is(entry: _MemKey, clinic_id: str, subject: str) -> bool:
        return entry.key.clinic_id == clinic_id and entry.key.subject_id == subject


# --- PostgreSQL ---------------------------------------------------------------------------

_KEY_COLUMNS = "key_id, clinic_id, subject_id, wrapped_key, master_key_id"

STREAM_KEYS_SQL = f"""(
    SELECT json_agg(json_build_array(k.key_id, k.clinic_id, k.subject_id,
                                     encode(k.wrapped_key, 'base64'), k.master_key_id))
      FROM subject_keys k
     WHERE k.key_id IN (SELECT f.value ->> 'kid'
                          FROM s, jsonb_each(s.data) AS f
                         WHERE jsonb_typeof(f.value) = 'object'
                           AND f.value ->> '{TAG}' = '{VERSION}'))"""
"""The keys named by the sealed top-level values of the rows of ``s`` (events' ``data``),
destroyed ones included, as one JSON array of ``[key_id, clinic_id, subject_id, wrapped
key in base64 or null, master_key_id]``: for a statement that reads events to look up
their keys too (``PostgresEventStore.read_stream_with``); see ``accept_rows``."""
_RECORD_COLUMNS = "key_id, subject_id, created_at, destroyed_at, destroyed_by, destroy_reason"


def _lock_id(clinic_id: str, subject: str) -> str:
    return f"subject-key\x1f{clinic_id}\x1f{subject}"


class PostgresSubjectKeyStore:
    """Subject keys in ``subject_keys``, links in ``subject_links`` (migration 0033).

    ``master_keys``: the first wraps new keys, all unwrap (rotation: prepend a new
    one, call ``rewrap``, drop the old one once no backup needs it).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        master_keys: Sequence[bytes],
        *,
        cache_ttl_s: float = 30.0,
        cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not master_keys or any(len(k) != 32 for k in master_keys):
            raise ValueError("subject key store needs 32-byte master keys")
        self._pool = pool
        self._masters = {master_key_id(k): AESGCM(k) for k in master_keys}
        self._current = master_key_id(master_keys[0])
        # Live keys by (clinic, subject) and by id; destroyed keys by id (final).
        self._live: TtlCache[tuple[str, str], SubjectKey] = TtlCache(
            cache_max_entries, cache_ttl_s, clock=clock
        )
        self._by_id: TtlCache[str, SubjectKey] = TtlCache(
            cache_max_entries, cache_ttl_s, clock=clock
        )
        self._destroyed: TtlCache[str, SubjectKey] = TtlCache(
            cache_max_entries, max(DESTROYED_TTL_S, cache_ttl_s), clock=clock
        )
        self._seen = _Seen()
        self._generation = 0
        self._on_invalidate: list[Callable[[], None]] = []
        self._listener = InvalidationListener(pool, CHANNEL, self._invalidate, "subject key")

    @classmethod
    def from_secret(
        cls,
        pool: asyncpg.Pool,
        secret: str,
        *,
        cache_ttl_s: float = 30.0,
        cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
    ) -> PostgresSubjectKeyStore:
        """The store with the master key derived from ``MEDICALCOR_SECRET_KEY``."""
        return cls(
            pool,
            [master_key_from_secret(secret)],
            cache_ttl_s=cache_ttl_s,
            cache_max_entries=cache_max_entries,
        )

    # --- keys -------------------------------------------------------------------------

    async def encryption_key(self, clinic_id: str, subject: str) -> SubjectKey:
        cached = self._live.get((clinic_id, subject))
        if cached is not None:
            return cached
        generation = self._generation
        key = await self._live_key(clinic_id, subject)
        if key is None:
            key = await self._create(clinic_id, subject)
        self._remember(key, generation)
        return key

    async def _live_key(self, clinic_id: str, subject: str) -> SubjectKey | None:
        row = await self._pool.fetchrow(
            f"""SELECT {_KEY_COLUMNS} FROM subject_keys
                WHERE clinic_id = $1 AND subject_id = $2 AND destroyed_at IS NULL""",
            clinic_id,
            subject,
        )
        return self._unwrap(row) if row is not None else None

    async def _create(self, clinic_id: str, subject: str) -> SubjectKey:
        """Insert the subject's key under a lock that ``destroy`` takes too."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                _lock_id(clinic_id, subject),
            )
            rows = await conn.fetch(
                f"""SELECT {_KEY_COLUMNS} FROM subject_keys
                    WHERE clinic_id = $1 AND subject_id = $2""",
                clinic_id,
                subject,
            )
            live = [r for r in rows if r["wrapped_key"] is not None]
            if live:
                return self._unwrap(live[0])
            if rows and not renewable(subject):
                raise SubjectErased(clinic_id, subject)
            key = SubjectKey(_new_key_id(), clinic_id, subject, new_key_material())
            await conn.execute(
                """INSERT INTO subject_keys (key_id, clinic_id, subject_id, wrapped_key,
                                             master_key_id)
                   VALUES ($1, $2, $3, $4, $5)""",
                key.key_id,
                clinic_id,
                subject,
                self._wrap(key),
                self._current,
            )
            return key

    async def get_keys(self, key_ids: Collection[str]) -> dict[str, SubjectKey]:
        found: dict[str, SubjectKey] = {}
        missing: list[str] = []
        for key_id in set(key_ids):
            cached = self._destroyed.get(key_id) or self._by_id.get(key_id)
            if cached is not None:
                found[key_id] = cached
            else:
                missing.append(key_id)
        if missing:
            generation = self._generation
            rows = await self._pool.fetch(
                f"SELECT {_KEY_COLUMNS} FROM subject_keys WHERE key_id = ANY($1::text[])",
                missing,
            )
            for row in rows:
                key = self._unwrap(row)
                found[key.key_id] = key
                # A key that is not destroyed is its subject's live key (one per subject:
                # subject_keys_live_idx), so a later seal needs no lookup of its own.
                self._remember(key, generation)
        return found

    @property
    def generation(self) -> int:
        """Moves on whenever a notification may have made cached keys stale: take it
        before a statement that reads keys, give it back to :meth:`accept_rows`."""
        return self._generation

    def accept_rows(
        self, rows: Iterable[Sequence[Any]] | None, generation: int
    ) -> dict[str, SubjectKey]:
        """Keys another statement read (``STREAM_KEYS_SQL``'s rows), by id, as
        :meth:`get_keys` answers: a key the rows show destroyed is destroyed; a live one
        comes from the cache when it is there, else it is unwrapped and cached (if no
        notification arrived since ``generation`` was taken)."""
        found: dict[str, SubjectKey] = {}
        for key_id, clinic_id, subject, wrapped, master in rows or ():
            if wrapped is not None:
                cached = self._by_id.get(key_id)
                if cached is not None:
                    found[key_id] = cached
                    continue
            key = self._unwrap(
                {
                    "key_id": key_id,
                    "clinic_id": clinic_id,
                    "subject_id": subject,
                    "wrapped_key": None if wrapped is None else base64.b64decode(wrapped),
                    "master_key_id": master,
                }
            )
            found[key_id] = key
            self._remember(key, generation)
        return found

    async def destroy(
        self, clinic_id: str, subjects: Collection[str], *, actor: str, reason: str | None
    ) -> list[KeyRecord]:
        wanted = sorted(set(subjects))
        if not wanted:
            return []
        async with self._pool.acquire() as conn, conn.transaction():
            for subject in wanted:  # sorted: two erasures never deadlock
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    _lock_id(clinic_id, subject),
                )
            rows = await conn.fetch(
                f"""UPDATE subject_keys
                    SET wrapped_key = NULL, master_key_id = NULL, destroyed_at = now(),
                        destroyed_by = $3, destroy_reason = $4
                    WHERE clinic_id = $1 AND subject_id = ANY($2::text[])
                      AND destroyed_at IS NULL
                    RETURNING {_RECORD_COLUMNS}""",
                clinic_id,
                wanted,
                actor,
                reason,
            )
            # A subject that never had a key gets a tombstone: none can be created later.
            await conn.execute(
                """INSERT INTO subject_keys (key_id, clinic_id, subject_id, destroyed_at,
                                             destroyed_by, destroy_reason)
                   SELECT u.k, $1, u.s, now(), $3, $4
                   FROM unnest($2::text[], $5::text[]) AS u(s, k)
                   WHERE NOT EXISTS (SELECT 1 FROM subject_keys x
                                     WHERE x.clinic_id = $1 AND x.subject_id = u.s)""",
                clinic_id,
                wanted,
                actor,
                reason,
                [_new_key_id() for _ in wanted],
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, clinic_id)
        self._invalidate()
        return [_record(r) for r in rows]

    async def rewrap(self) -> int:
        """Re-wrap every live key under the current master key; returns how many moved."""
        rows = await self._pool.fetch(
            f"""SELECT {_KEY_COLUMNS} FROM subject_keys
                WHERE destroyed_at IS NULL AND master_key_id <> $1""",
            self._current,
        )
        moved = 0
        for row in rows:
            key = self._unwrap(row)
            done = await self._pool.fetchval(
                """UPDATE subject_keys SET wrapped_key = $2, master_key_id = $3
                   WHERE key_id = $1 AND destroyed_at IS NULL RETURNING true""",
                key.key_id,
                self._wrap(key),
                self._current,
            )
            moved += bool(done)
        return moved

    async def records(self, clinic_id: str, subjects: Collection[str]) -> list[KeyRecord]:
        rows = await self._pool.fetch(
            f"""SELECT {_RECORD_COLUMNS} FROM subject_keys
                WHERE clinic_id = $1 AND subject_id = ANY($2::text[])
                ORDER BY created_at, key_id""",
            clinic_id,
            sorted(set(subjects)),
        )
        return [_record(r) for r in rows]

    # --- the subject index --------------------------------------------------------------

    async def link(self, clinic_id: str, links: Iterable[Link]) -> None:
        fresh = self._seen.new(clinic_id, links)
        if not fresh:
            return
        await self._pool.execute(
            """INSERT INTO subject_links (clinic_id, subject_id, kind, target)
               SELECT $1, s, k, t FROM unnest($2::text[], $3::text[], $4::text[]) AS u(s, k, t)
               ON CONFLICT DO NOTHING""",
            clinic_id,
            [s for s, _, _ in fresh],
            [k for _, k, _ in fresh],
            [t for _, _, t in fresh],
        )
        self._seen.add(clinic_id, fresh)

    def known_links(self, clinic_id: str, links: Iterable[Link]) -> None:
        """Links a read proved recorded (see ``CryptoShreddingEventStore``): ``link``
        skips them like the ones this process inserted itself."""
        self._seen.add(clinic_id, links)

    async def reachable(self, clinic_id: str, subject: str) -> set[str]:
        rows = await self._pool.fetch(
            """WITH RECURSIVE reach(s) AS (
                   SELECT $2::text
                   UNION
                   SELECT l.target FROM subject_links l JOIN reach r ON l.subject_id = r.s
                   WHERE l.clinic_id = $1 AND l.kind = 'subject')
               SELECT s FROM reach""",
            clinic_id,
            subject,
        )
        return {r["s"] for r in rows}

    async def streams_of(self, clinic_id: str, subjects: Collection[str]) -> set[str]:
        rows = await self._pool.fetch(
            """SELECT DISTINCT target FROM subject_links
               WHERE clinic_id = $1 AND kind = 'stream' AND subject_id = ANY($2::text[])""",
            clinic_id,
            sorted(set(subjects)),
        )
        return {r["target"] for r in rows}

    # --- wrapping -----------------------------------------------------------------------

    def _wrap(self, key: SubjectKey) -> bytes:
        assert key.material is not None
        nonce = os.urandom(_NONCE)
        aad = _wrap_aad(key.key_id, key.clinic_id, key.subject_id)
        return nonce + self._masters[self._current].encrypt(nonce, key.material, aad)

    def _unwrap(self, row: asyncpg.Record | Mapping[str, Any]) -> SubjectKey:
        key = SubjectKey(row["key_id"], row["clinic_id"], row["subject_id"], None)
        wrapped = row["wrapped_key"]
        if wrapped is None:
            return key
        master = self._masters.get(row["master_key_id"])
        if master is None:
            raise LookupError(f"subject key {key.key_id} is wrapped with an unknown master key")
        aad = _wrap_aad(key.key_id, key.clinic_id, key.subject_id)
        try:
            material = master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except InvalidTag as exc:
            raise LookupError(f"subject key {key.key_id} failed to unwrap") from exc
        return replace(key, material=material)

    # --- cache and its invalidation -------------------------------------------------------

    def _remember(self, key: SubjectKey, generation: int) -> None:
        if key.destroyed:  # final: safe to keep without a listener
            self._by_id.discard(key.key_id)
            self._destroyed.put(key.key_id, key)
            return
        # Cache only what no notification received meanwhile could have made stale.
        if not self._listener.listening or generation != self._generation:
            return
        self._by_id.put(key.key_id, key)
        self._live.put((key.clinic_id, key.subject_id), key)

    async def start(self) -> None:
        """LISTEN for changes so lookups may be cached (call from the app's lifespan)."""
        await self._listener.start()

    async def close(self) -> None:
        """Stop listening and release the connection (the cache is off again)."""
        await self._listener.close()

    @property
    def caching(self) -> bool:
        return self._listener.listening

    def cache_sizes(self) -> dict[str, int]:
        """Entries held per cache (live by subject, live by id, destroyed)."""
        return {
            "live": len(self._live),
            "by_id": len(self._by_id),
            "destroyed": len(self._destroyed),
        }

    def _invalidate(self) -> None:
        """Forget every live key (a key may have been destroyed); destroyed ones stay."""
        self._generation += 1
        self._live.clear()
        self._by_id.clear()
        for hook in self._on_invalidate:
            try:
                hook()
            except Exception:
                log.exception("a subject-key invalidation hook failed")

    def on_invalidate(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever keys may have been destroyed (here or in another process):
        caches of opened personal data (the query bus's answers) must forget them too."""
        self._on_invalidate.append(hook)


def _record(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        key_id=row["key_id"],
        subject_id=row["subject_id"],
        created_at=row["created_at"],
        destroyed_at=row["destroyed_at"],
        destroyed_by=row["destroyed_by"],
        destroy_reason=row["destroy_reason"],
    )
