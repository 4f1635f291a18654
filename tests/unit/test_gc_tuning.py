"""freeze_startup_heap: start-up garbage is collected first, survivors leave the GC's walk."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from adapters.gc_tuning import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process must not keep the whole suite's heap frozen


def test_collects_garbage_then_freezes_survivors(unfrozen: None) -> None:
    garbage_a, garbage_b = Node(), Node()
    garbage_a.other, garbage_b.other = garbage_b, garbage_a  # a cycle: only the GC frees it
    dead = weakref.ref(garbage_a)
    del garbage_a, garbage_b
    survivor = Node()

    frozen = freeze_startup_heap("test")

    assert dead() is None, "start-up garbage in cycles must be collected before freezing"
    # (not equal to a later get_freeze_count: frozen objects freed by reference counting
    # leave the permanent generation)
    assert frozen > 0 and gc.get_freeze_count() > 0
    tracked = {id(o) for o in gc.get_objects()}
    assert id(survivor) not in tracked, "a survivor must sit in the permanent generation"
