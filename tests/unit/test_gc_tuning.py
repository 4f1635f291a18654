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


# --- return_free_heap: freed C heap goes back to the system -----------------------------

FRAGMENTED_HEAP = """
import sys
from adapters.gc_tuning import return_free_heap

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

blocks = [bytes(8192) for _ in range(8192)]  # 64 MiB in malloc's arena (not mmap)
sentinel = bytes(8192)  # allocated last: the freed blocks sit below the heap's top
del blocks
before = rss_mib()
released = return_free_heap()
after = rss_mib()
print(released, round(before - after, 1))
"""


def test_freed_heap_inside_the_arena_is_given_back() -> None:
    """The projector's soak growth, in small: 64 MiB freed below a live block stays in
    the process (glibc keeps it) until return_free_heap gives the pages back."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/statm").exists():
        pytest.fail("this test reads RSS from /proc (Linux)")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    released, returned_mib = out[0], float(out[1])
    assert released == "True"
    assert returned_mib > 48, f"only {returned_mib} MiB of 64 freed MiB went back"


async def test_trimming_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from adapters import gc_tuning

    calls: list[int] = []
    stop = asyncio.Event()

    def counting_trim(pad: int) -> int:  # runs in a thread: counts, then stops the loop
        calls.append(pad)
        if len(calls) == 3:
            loop.call_soon_threadsafe(stop.set)
        return 1

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(gc_tuning, "_MALLOC_TRIM", counting_trim)
    await asyncio.wait_for(gc_tuning.trim_heap_periodically("test", stop, every_s=0.01), 5)
    assert calls == [0, 0, 0]
