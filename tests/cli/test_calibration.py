"""The machine calibration printed beside the benchmark figures."""

from __future__ import annotations

from attune_services.bench.calibration import calibrated, loop_ms


def test_loop_ms_is_a_positive_duration_that_grows_with_the_work() -> None:
    one = loop_ms(rounds=1)
    assert one > 0
    assert loop_ms(rounds=3) < one * 20  # a median of the same loop, not a sum


def test_calibrated_adds_the_slower_of_before_and_after_and_keeps_the_figures() -> None:
    lines: list[str] = []
    figures = calibrated(lambda: {"noop_latency_ms_p50": 1.5}, lines.append)
    assert figures["noop_latency_ms_p50"] == 1.5
    assert figures["machine_loop_ms"] > 0
    assert any("machine calibration" in line for line in lines)
