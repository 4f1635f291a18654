"""The garbage collector in long-running MedicalCor processes.

CPython's cyclic collector periodically walks every container object the process
holds. A service's start-up leaves ~300,000 of them that live as long as the process
(modules, classes, pydantic schemas, the function registry, compiled intent lexicons),
so each full (generation 2) collection took ~200 ms on these machines: a pause every
in-flight request waits through, the tail of the gateway's write latency, and ~10 %
of a write's CPU. :func:`freeze_startup_heap`, called once start-up is done, collects
what start-up left as garbage and moves the rest to the permanent generation
(``gc.freeze``), which collections skip: a full collection then walks only what was
allocated since (a few ms). Start-up objects that die later are still freed by
reference counting; only cycles among them would stay, which start-up does not leave.

:func:`return_free_heap` is the other half of a flat memory line: glibc keeps memory
that was freed inside its arenas for reuse instead of giving it back to the system.
The projector allocates a whole batch of events (their JSON text, decoded dicts, three
projections' rows) at once and frees it, and over a 10-minute soak its RSS grew 105 →
129 MiB while the bytes malloc had handed out stayed flat (86–87 MiB): the growth was
free space inside the arenas (0 → 59 MiB). ``malloc_trim(0)`` gives every free page of
every arena back; :func:`trim_heap_periodically` calls it now and then, off the event
loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def freeze_startup_heap(process: str) -> int:
    """Collect start-up garbage, then freeze the surviving objects; how many were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "%s: %d start-up objects frozen out of garbage collection (%.0f ms)",
        process,
        frozen,
        (time.perf_counter() - started) * 1000,
    )
    return frozen


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _glibc_malloc_trim()


def return_free_heap() -> bool | None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``).

    True if memory was released, False if there was none to release, None where the C
    library cannot do it. ctypes releases the GIL for the call, so it may run in a
    thread while the event loop goes on.
    """
    if _MALLOC_TRIM is None:
        return None
    return bool(_MALLOC_TRIM(0))


async def trim_heap_periodically(process: str, stop: asyncio.Event, every_s: float = 30.0) -> None:
    """:func:`return_free_heap` every ``every_s`` seconds, in a thread, until ``stop``."""
    if _MALLOC_TRIM is None:
        log.info("%s: no malloc_trim in this C library; free heap is not returned", process)
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            await asyncio.to_thread(return_free_heap)
