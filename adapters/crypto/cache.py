"""A bounded in-process cache whose entries expire: the subject-key cache's storage.

Entries live at most ``ttl_s`` seconds and there are never more than
``max_entries``. Every entry of one cache has the same lifetime, so insertion order
is expiry order: expired entries are dropped from the oldest end on each write (and
on a read that meets one), which keeps the work per call constant on average. When
the cache is full of live entries, the oldest (the one closest to expiring anyway)
makes room. Forgetting an entry only costs a query; keeping one too long could serve
a key after its destruction, hence both bounds.

Not thread-safe: one event loop uses it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """``get``/``put``/``discard`` with a size bound and a time-to-live (see module doc)."""

    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if not ttl_s > 0:
            raise ValueError("ttl_s must be positive")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self.evicted = 0
        """Entries dropped to respect ``max_entries`` (not counting expiries)."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value of ``key``; an expired one is dropped and None answered."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= self._clock():
            self.sweep()
            return None
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``ttl_s`` from now (a re-put renews and moves it last)."""
        now = self._clock()
        self._sweep(now)
        self._entries[key] = (value, now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evicted += 1

    def discard(self, key: K) -> None:
        """Forget ``key`` if present."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def sweep(self) -> int:
        """Drop every expired entry now; returns how many."""
        return self._sweep(self._clock())

    def _sweep(self, now: float) -> int:
        dropped = 0
        while self._entries:
            key, (_, expires) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[key]
            dropped += 1
        return dropped
