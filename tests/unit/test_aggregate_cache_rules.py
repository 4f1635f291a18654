"""The aggregate cache's own rules (no I/O): bounded in size and time, never going back to
an older version, handing out nothing twice; and the fast deep copy it relies on."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.aggregates import Clinic, Patient
from domain.cqrs import AggregateCache, CachedAggregate, _has_nul, clone_aggregate
from domain.events import PatientRegistered, PatientUpdated
from domain.text import nul_path


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def patient(n: int, version: int = 1) -> CachedAggregate:
    agg = Patient(f"p{n}")
    agg.version = version
    return CachedAggregate(agg)


def test_entries_are_taken_once_and_only_by_their_class() -> None:
    cache = AggregateCache(size=10, clock=Clock())
    cache.put("c", patient(1))
    assert cache.take("c", "patient-p1", Clinic) is None  # another class: dropped
    cache.put("c", patient(1))
    assert cache.take("other-clinic", "patient-p1", Patient) is None
    taken = cache.take("c", "patient-p1", Patient)
    assert taken is not None and taken.version == 1
    assert cache.take("c", "patient-p1", Patient) is None  # nobody else gets it


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = AggregateCache(size=10, clock=Clock())
    cache.put("c", patient(1, version=5))
    cache.put("c", patient(1, version=3))
    entry = cache.take("c", "patient-p1", Patient)
    assert entry is not None and entry.version == 5


def test_the_cache_is_bounded_in_size_and_time() -> None:
    clock = Clock()
    cache = AggregateCache(size=3, ttl=10.0, clock=clock)
    for n in range(5):
        cache.put("c", patient(n))
    assert len(cache) == 3 and cache.take("c", "patient-p0", Patient) is None
    clock.now += 10.0
    assert cache.take("c", "patient-p4", Patient) is None  # expired
    cache.put("c", patient(9))  # putting drops what expired
    assert len(cache) == 1


def test_a_zero_sized_cache_keeps_nothing() -> None:
    for cache in (AggregateCache(size=0), AggregateCache(ttl=0)):
        cache.put("c", patient(1))
        assert len(cache) == 0


def test_clone_is_a_deep_copy_that_keeps_shared_references_shared() -> None:
    agg = Patient.rehydrate(
        "p1",
        [
            PatientRegistered(patient_id="p1", first_name="Ana", tags=["vip"]),
            PatientUpdated(patient_id="p1", changes={"notes": "x", "date_of_birth": "1990-01-02"}),
        ],
        2,
    )
    shared: list[Any] = [1, {"deep": [date(2020, 1, 1)]}]
    agg.extra = {"a": shared, "b": shared, "when": datetime(2025, 1, 1, tzinfo=UTC)}  # type: ignore[attr-defined]
    clone = clone_aggregate(agg)
    assert type(clone) is Patient and clone.__dict__ == agg.__dict__
    assert clone.profile is not agg.profile and clone.profile["tags"] is not agg.profile["tags"]
    extra = clone.extra  # type: ignore[attr-defined]
    assert extra["a"] is extra["b"] and extra["a"] is not shared
    assert extra["a"][1]["deep"] is not shared[1]["deep"]
    assert copy.deepcopy(agg).__dict__ == clone.__dict__


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(max_codepoint=300)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=300)), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5), json_like, max_size=5))
def test_the_nul_pre_check_agrees_with_nul_path(data: dict[str, Any]) -> None:
    assert _has_nul(data) == (nul_path(data) is not None)
