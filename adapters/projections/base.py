"""What every projection is made of: events in, rows of its own tables out, in batches.

A projection folds a batch of events (in global order) into its read-model tables
inside the projector's transaction, which also moves its checkpoint, so rows and
checkpoint commit together. The helpers here keep a batch cheap: ``Rows`` loads the
rows a batch touches in one query, lets the fold change them in memory and writes
them back with one ``unnest`` upsert; ``Counters`` adds deltas without reading.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adapters.projections.personal import PersonalData

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, pooled or not (projections write on the projector's transaction)."""
Key = tuple[Any, ...]
Row = dict[str, Any]
BUCHAREST = ZoneInfo("Europe/Bucharest")


@dataclass(frozen=True, slots=True)
class ProjectedEvent:
    """An event as projections see it: envelope plus current-version data."""

    position: int
    clinic_id: str
    stream_id: str
    stream_type: str
    version: int
    type: str
    data: dict[str, Any]
    recorded_at: datetime
    key_id: str | None = None
    """The subject key that sealed the event's personal fields in the store (None: the
    event was stored unsealed). Projections seal what they keep under the same key."""

    @property
    def day(self) -> date:
        """The Europe/Bucharest calendar day the event was recorded on."""
        return self.recorded_at.astimezone(BUCHAREST).date()


class Projection(ABC):
    """A read model: the event types it folds, its tables and the fold itself.

    ``version`` names the shape of its tables and what the fold writes into them: bump
    it with the migration that changes them, and the projector rebuilds the projection
    from the first event before applying anything new (the checkpoint remembers the
    version its rows were written by). Projections that keep personal data
    (``personal_data``) are built with a :class:`PersonalData`.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    """Every table the projection owns (emptied on rebuild), all keyed by clinic_id first."""
    handles: ClassVar[frozenset[str]]
    version: ClassVar[int] = 1
    personal_data: ClassVar[bool] = False

    def __init__(self, personal: PersonalData | None = None) -> None:
        if self.personal_data and personal is None:
            raise ValueError(
                f"projection {self.name!r} keeps personal data: it needs the pseudonymizer and"
                " the subject key store (read events through the crypto-shredding store, or"
                " pass personal=PersonalData(...))"
            )
        self._personal = personal

    @property
    def personal(self) -> PersonalData:
        """Hashing and sealing of personal values (only for ``personal_data`` projections)."""
        if self._personal is None:
            raise ValueError(f"projection {self.name!r} was built without PersonalData")
        return self._personal

    @abstractmethod
    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        """Fold ``events`` (only types in ``handles``, in order) into the tables."""


_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""``adapters.postgres.pool.dumps`` (the same text) without an encoder built per value."""


def _single(column: str) -> Callable[[Row], Key]:
    def key_of(row: Row) -> Key:
        return (row[column],)

    return key_of


def ts(value: Any) -> datetime | None:
    """An ISO 8601 string from event data as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def day_of(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


class Table:
    """A read-model table: name, key columns and every column with its SQL type."""

    def __init__(self, name: str, key: Sequence[str], columns: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.key = tuple(key)
        self.columns = tuple(c for c, _ in columns)
        self.types = dict(columns)
        missing = set(self.key) - set(self.columns)
        if missing:
            raise ValueError(f"{name}: key columns {missing} are not columns")
        self.upsert_sql = self._upsert()
        self._key_of: Callable[[Row], Key] = (
            itemgetter(*self.key) if len(self.key) > 1 else _single(self.key[0])
        )
        self.load_sql = (
            f"SELECT {', '.join(self.columns)} FROM {name} WHERE ({', '.join(self.key)}) IN "
            f"(SELECT * FROM unnest({self._params(self.key)}))"
        )
        self.delete_sql = (
            f"DELETE FROM {name} WHERE ({', '.join(self.key)}) IN "
            f"(SELECT * FROM unnest({self._params(self.key)}))"
        )

    def _params(self, columns: Sequence[str], start: int = 1) -> str:
        # jsonb travels as text: asyncpg would read a JSON list inside an array
        # parameter as another array dimension.
        return ", ".join(
            f"${i}::{'text' if self.types[c] == 'jsonb' else self.types[c]}[]"
            for i, c in enumerate(columns, start)
        )

    def _upsert(self) -> str:
        rest = [c for c in self.columns if c not in self.key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
            if rest
            else "DO NOTHING"
        )
        values = ", ".join(
            f"u.{c}::jsonb" if self.types[c] == "jsonb" else f"u.{c}" for c in self.columns
        )
        return (
            f"INSERT INTO {self.name} ({', '.join(self.columns)}) "
            f"SELECT {values} FROM unnest({self._params(self.columns)}) "
            f"AS u({', '.join(self.columns)}) "
            f"ON CONFLICT ({', '.join(self.key)}) {action}"
        )

    def key_of(self, row: Row) -> Key:
        return self._key_of(row)

    def arrays(self, rows: Sequence[Row], columns: Sequence[str]) -> list[list[Any]]:
        """Column-wise parameters for ``unnest`` (jsonb values encoded as JSON text)."""
        out = []
        for c in columns:
            values = [r.get(c) for r in rows]
            if self.types[c] == "jsonb":
                values = [None if v is None else _json(v) for v in values]
            out.append(values)
        return out


class Rows:
    """The rows of one table that a batch touches: loaded once, changed, written once."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._rows: dict[Key, Row | None] = {}
        self._dirty: set[Key] = set()

    async def load(self, conn: Conn, keys: Iterable[Key]) -> None:
        """Fetch the rows of ``keys`` not known yet (absent rows are remembered as None)."""
        missing = [k for k in set(keys) if k not in self._rows]
        if not missing:
            return
        arrays = [list(col) for col in zip(*missing, strict=True)]
        for record in await conn.fetch(self.table.load_sql, *arrays):
            row = dict(record)
            self._rows[self.table.key_of(row)] = row
        for key in missing:
            self._rows.setdefault(key, None)

    def get(self, key: Key) -> Row | None:
        """The row as changed so far in this batch; the key must have been loaded or put."""
        return self._rows[key]

    def known(self, key: Key) -> bool:
        return key in self._rows

    def put(self, row: Row) -> Row:
        key = self.table.key_of(row)
        self._rows[key] = row
        self._dirty.add(key)
        return row

    def delete(self, key: Key) -> None:
        self._rows[key] = None
        self._dirty.add(key)

    def rows(self) -> list[Row]:
        return [r for r in self._rows.values() if r is not None]

    async def flush(self, conn: Conn) -> None:
        """Write every changed row back: deletions, then one upsert."""
        gone = [k for k in self._dirty if self._rows[k] is None]
        kept = [r for k in self._dirty if (r := self._rows[k]) is not None]
        if gone:
            arrays = [list(col) for col in zip(*gone, strict=True)]
            await conn.execute(self.table.delete_sql, *arrays)
        if kept:
            await conn.execute(self.table.upsert_sql, *self.table.arrays(kept, self.table.columns))
        self._dirty.clear()


class Counters:
    """Additive counters keyed like ``table``: deltas summed in memory, added in one upsert.

    ``latest`` columns keep the greatest value seen (e.g. a last-activity time).
    """

    def __init__(
        self,
        name: str,
        key: Sequence[tuple[str, str]],
        counts: Sequence[str],
        latest: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.key = tuple(c for c, _ in key)
        self.counts = tuple(counts)
        self.latest = tuple(c for c, _ in latest)
        types = [*key, *((c, "bigint") for c in counts), *latest]
        columns = [c for c, _ in types]
        params = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(types, start=1))
        updates = [f"{c} = {name}.{c} + EXCLUDED.{c}" for c in self.counts] + [
            f"{c} = GREATEST({name}.{c}, EXCLUDED.{c})" for c in self.latest
        ]
        self.sql = (
            f"INSERT INTO {name} ({', '.join(columns)}) SELECT * FROM unnest({params}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {', '.join(updates)}"
        )
        self._deltas: dict[Key, dict[str, Any]] = {}

    def add(self, key: Key, column: str, amount: int = 1) -> None:
        entry = self._entry(key)
        entry[column] += amount

    def touch(self, key: Key, column: str, value: Any) -> None:
        entry = self._entry(key)
        current = entry[column]
        entry[column] = value if current is None or value > current else current

    def _entry(self, key: Key) -> dict[str, Any]:
        entry = self._deltas.get(key)
        if entry is None:
            entry = {c: 0 for c in self.counts} | {c: None for c in self.latest}
            self._deltas[key] = entry
        return entry

    async def flush(self, conn: Conn) -> None:
        if not self._deltas:
            return
        keys = list(self._deltas)
        arrays: list[list[Any]] = [[k[i] for k in keys] for i in range(len(self.key))]
        arrays += [[self._deltas[k][c] for k in keys] for c in (*self.counts, *self.latest)]
        await conn.execute(self.sql, *arrays)
        self._deltas.clear()
