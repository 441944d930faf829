"""The benchmark's timeline picture: step curves from per-instance times, and a PNG written."""

from __future__ import annotations

from pathlib import Path

from bench.plot import path_for_run, rollout_timelines, steps


def test_steps_count_instances_done_in_time_order() -> None:
    assert steps([2.0, 1.0, 3.5]) == ([0.0, 1.0, 2.0, 3.5], [0, 1, 2, 3])
    assert steps([]) == ([0.0], [0])


def test_the_picture_is_a_png(tmp_path: Path) -> None:
    result = {
        "args": {"instances": 3},
        "machine": {"cpus": 2},
        "timelines": {"scaleset": [1.0, 1.2, 2.0], "deployment": [1.5, 2.5, 3.0]},
        "scaleset": {"seconds": 2.1},
        "deployment": {"seconds": 3.2},
    }
    target = tmp_path / "timeline.png"
    rollout_timelines(result, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_runs_draw_one_picture_each() -> None:
    target = Path("docs/rollout-timeline.png")
    assert path_for_run(target, 1, 1) == target
    named = [path_for_run(target, n, 3) for n in (1, 2, 3)]
    assert named == [Path(f"docs/rollout-timeline-run{n}.png") for n in (1, 2, 3)]
    assert path_for_run(None, 2, 3) is None
