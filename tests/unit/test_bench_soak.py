"""The soak's own arithmetic: the flatness criterion and the workflow cache reading."""

from __future__ import annotations

from bench.soak import cached_workflows, memory_figures, second_half_growth

METRICS = """# HELP temporal_sticky_cache_size Current number of cached workflows
# TYPE temporal_sticky_cache_size gauge
temporal_sticky_cache_size{namespace="default",service_name="sdk",task_queue="soak-messaging"} 3
temporal_sticky_cache_size{namespace="default",service_name="sdk",task_queue="soak-bookings"} 200
temporal_sticky_cache_hit_total{namespace="default",task_queue="soak-bookings"} 41
"""


def test_cache_size_is_read_for_the_one_task_queue() -> None:
    assert cached_workflows(METRICS, "soak-bookings") == 200
    assert cached_workflows(METRICS, "soak-messaging") == 3
    assert cached_workflows(METRICS, "soak-ai") is None
    assert cached_workflows("", "soak-bookings") is None


def test_a_filling_first_half_then_a_plateau_is_flat() -> None:
    # 0-300 s: a cache filling (+40 MiB); 300-600 s: a saw-tooth around 200 MiB
    samples = [(t, {"worker": 160 + 40 * t / 300, "api": 100.0, "projector": 90.0})
               for t in range(0, 300, 10)]  # fmt: skip
    samples += [(t, {"worker": 200 + (6 if (t // 50) % 2 else -6), "api": 100.0,
                     "projector": 90.0}) for t in range(300, 610, 10)]  # fmt: skip
    assert abs(second_half_growth(samples, "worker")) < 5.0
    assert memory_figures(samples)["memory_flat"] is True


def test_a_steady_rise_through_the_second_half_is_not_flat() -> None:
    samples = [(t, {"worker": 150 + 0.1 * t, "api": 100.0, "projector": 90.0})
               for t in range(0, 610, 10)]  # fmt: skip
    # 30 MiB over the second half, against ~180 MiB at half-time
    assert second_half_growth(samples, "worker") > 5.0
    assert memory_figures(samples)["memory_flat"] is False
