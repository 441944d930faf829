"""The regression guard of `python -m bench.rollout_vs_deployment --quick`: the run's key figures
against the last run recorded in the repository (bench/baseline/rollout-quick.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).resolve().parent / "baseline" / "rollout-quick.json"
TOLERANCE = 0.20


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    higher_is_better: bool


FIGURES = (
    Figure("speed_up", "speed-up over the Deployment", True),
    Figure("operator_cpu_ms_per_instance", "operator CPU ms per upgraded instance", False),
    Figure("writes_per_instance", "API writes per upgraded instance", False),
)


def figures(result: dict[str, Any]) -> dict[str, float]:
    n = result["args"]["instances"]
    ss, dep = result["scaleset"], result["deployment"]
    return {
        "speed_up": round(dep["seconds"] / ss["seconds"], 3),
        "operator_cpu_ms_per_instance": round(1000 * ss["cpu_s"].get("operator", 0.0) / n, 2),
        "writes_per_instance": ss["writes_per_instance"],
    }


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (the upper middle one of an even number)."""
    if not runs:
        raise ValueError("no run to take figures from")
    return {figure.key: sorted(r[figure.key] for r in runs)[len(runs) // 2] for figure in FIGURES}


def regressed(figure: Figure, before: float, now: float) -> bool:
    """Worse by more than the tolerance, in the figure's own direction."""
    if before <= 0:
        return False
    change = (now - before) / before
    return change < -TOLERANCE if figure.higher_is_better else change > TOLERANCE


def compare(now: dict[str, float], baseline: dict[str, Any]) -> tuple[list[tuple[str, str]], bool]:
    """Rows for the table, and whether any figure regressed."""
    rows = [("baseline", f"{baseline.get('recorded', '?')} on {baseline.get('machine', '?')}")]
    any_worse = False
    for figure in FIGURES:
        before = float(baseline["figures"][figure.key])
        value = now[figure.key]
        worse = regressed(figure, before, value)
        any_worse |= worse
        change = f"{100 * (value - before) / before:+.0f} %" if before else "n/a"
        flag = "  REGRESSION (over 20 % worse)" if worse else ""
        rows.append((figure.label, f"{value} (was {before}, {change}){flag}"))
    return rows, any_worse


def load_baseline(path: Path = BASELINE) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


def record(
    now: dict[str, float],
    result: dict[str, Any],
    stamp: str,
    path: Path = BASELINE,
    *,
    runs: int = 1,
) -> None:
    machine = result["machine"]
    described = f"{machine.get('cpus')} x {machine.get('cpu_model')}, {machine.get('mem_gib')} GiB"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"recorded": stamp, "machine": described, "runs": runs, "figures": now}
    path.write_text(json.dumps(body, indent=2) + "\n")
