"""The benchmark's regression guard flags a figure only when it is over 20 % worse, in its own
direction."""

from __future__ import annotations

import pytest

from bench.guard import FIGURES, compare, median_figures, regressed

SPEED, CPU, WRITES = FIGURES
BASE = {
    "figures": {"speed_up": 1.5, "operator_cpu_ms_per_instance": 4.0, "writes_per_instance": 1.0}
}


def test_direction_and_tolerance() -> None:
    assert not regressed(SPEED, 1.5, 1.25)  # -17 %
    assert regressed(SPEED, 1.5, 1.1)  # -27 %
    assert not regressed(SPEED, 1.5, 3.0)  # faster is never a regression
    assert not regressed(CPU, 4.0, 4.7)  # +17.5 %
    assert regressed(CPU, 4.0, 5.0)  # +25 %
    assert not regressed(CPU, 4.0, 1.0)
    assert regressed(WRITES, 1.0, 1.3)


def test_compare_flags_only_the_worse_figure() -> None:
    now = {"speed_up": 1.6, "operator_cpu_ms_per_instance": 5.5, "writes_per_instance": 1.0}
    rows, worse = compare(now, BASE)
    assert worse
    flagged = [label for label, text in rows if "REGRESSION" in text]
    assert flagged == [CPU.label]


def test_a_steady_run_passes() -> None:
    rows, worse = compare(dict(BASE["figures"]), BASE)
    assert not worse
    assert len(rows) == 1 + len(FIGURES)


def test_the_guard_compares_each_figures_median_over_the_runs() -> None:
    runs = [
        {"speed_up": 1.2, "operator_cpu_ms_per_instance": 2.6, "writes_per_instance": 1.05},
        {"speed_up": 1.4, "operator_cpu_ms_per_instance": 1.8, "writes_per_instance": 1.06},
        {"speed_up": 1.3, "operator_cpu_ms_per_instance": 1.9, "writes_per_instance": 1.05},
    ]
    assert median_figures(runs) == {
        "speed_up": 1.3,
        "operator_cpu_ms_per_instance": 1.9,
        "writes_per_instance": 1.05,
    }
    # One slow run among three is not flagged; it would be alone.
    assert not compare(median_figures(runs), {"figures": runs[2]})[1]
    assert compare(runs[0], {"figures": runs[2]})[1]
    with pytest.raises(ValueError, match="no run"):
        median_figures([])
