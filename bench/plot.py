"""Pictures of benchmark runs: how many instances were Ready on the new image, over time, for
the ScaleSet's rolling upgrade and the Deployment's rollout of the same pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def steps(times: list[float]) -> tuple[list[float], list[int]]:
    """A step curve: at each time the count of instances done so far, starting from (0, 0)."""
    xs, ys = [0.0], [0]
    for count, at in enumerate(sorted(times), start=1):
        xs.append(at)
        ys.append(count)
    return xs, ys


def path_for_run(path: Path | None, number: int, runs: int) -> Path | None:
    """Where run `number` of `runs` draws its picture: `path` itself for a single run, else
    `path` with the run's number before the suffix, so no run overwrites another's."""
    if path is None or runs == 1:
        return path
    return path.with_name(f"{path.stem}-run{number}{path.suffix}")


def rollout_timelines(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot

    n = result["args"]["instances"]
    timelines = result["timelines"]
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=120)
    for key, label, colour in (
        ("scaleset", "ScaleSet rolling OS upgrade (20 % batches)", "#2a9d4b"),
        ("deployment", "Deployment rollout (maxUnavailable 20 %)", "#4a6fa5"),
    ):
        xs, ys = steps(timelines[key])
        seconds = result[key]["seconds"]
        axes.step(xs, ys, where="post", color=colour, label=f"{label}: {seconds:.1f} s")
    axes.set_xlabel("seconds since the publish (ScaleSet) or the patch (Deployment)")
    axes.set_ylabel("instances Ready on the new image")
    axes.set_ylim(0, n * 1.05)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    machine = result["machine"]
    axes.set_title(
        f"{n} instances, one local cluster ({machine.get('cpus')} cores, kwok nodes)", fontsize=10
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
