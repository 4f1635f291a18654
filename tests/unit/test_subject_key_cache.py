"""The bounded TTL cache behind the subject-key cache: expiry evicts, size is capped."""

from __future__ import annotations

import pytest

from adapters.crypto.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(max_entries: int = 3, ttl_s: float = 10.0) -> tuple[TtlCache[str, int], Clock]:
    clock = Clock()
    return TtlCache(max_entries, ttl_s, clock=clock), clock


def test_a_live_entry_is_served_until_its_ttl_ends() -> None:
    c, clock = cache()
    c.put("a", 1)
    clock.now += 9.99
    assert c.get("a") == 1
    clock.now += 0.01
    assert c.get("a") is None
    assert len(c) == 0  # the expired entry was dropped, not only hidden


def test_expired_entries_are_evicted_on_write_without_being_read() -> None:
    c, clock = cache(max_entries=100)
    for i in range(50):
        c.put(f"old-{i}", i)
    clock.now += 10.0
    c.put("new", 1)
    assert len(c) == 1 and c.get("new") == 1
    assert c.evicted == 0  # expiries are not size evictions


def test_the_size_bound_evicts_the_oldest_first() -> None:
    c, clock = cache(max_entries=3)
    for i, key in enumerate("abcd"):
        c.put(key, i)
        clock.now += 1
    assert len(c) == 3 and c.evicted == 1
    assert c.get("a") is None
    assert [c.get(k) for k in "bcd"] == [1, 2, 3]


def test_a_renewed_entry_moves_last_and_lives_a_full_ttl_again() -> None:
    c, clock = cache(max_entries=2)
    c.put("a", 1)
    c.put("b", 2)
    clock.now += 5
    c.put("a", 10)  # renewed: now the newest
    c.put("c", 3)  # full: "b" (the oldest) goes
    assert c.get("b") is None and c.get("a") == 10 and c.get("c") == 3
    clock.now += 9  # 14 s after the first put of "a", 9 s after its renewal
    assert c.get("a") == 10


def test_the_bound_holds_under_many_writes() -> None:
    c, clock = cache(max_entries=1000, ttl_s=5.0)
    for i in range(100_000):
        c.put(f"k{i}", i)
        if i % 1000 == 0:
            clock.now += 1
        assert len(c) <= 1000
    assert c.evicted > 0
    clock.now += 5
    assert c.sweep() == 1000 and len(c) == 0


def test_discard_and_clear() -> None:
    c, _ = cache()
    c.put("a", 1)
    c.put("b", 2)
    c.discard("a")
    c.discard("missing")
    assert c.get("a") is None and c.get("b") == 2
    c.clear()
    assert len(c) == 0


@pytest.mark.parametrize(("max_entries", "ttl_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bounds_must_be_positive(max_entries: int, ttl_s: float) -> None:
    with pytest.raises(ValueError):
        TtlCache(max_entries, ttl_s)
