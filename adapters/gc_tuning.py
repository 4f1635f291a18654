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
"""

from __future__ import annotations

import gc
import logging
import time

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
