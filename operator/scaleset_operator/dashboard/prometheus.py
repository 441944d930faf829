"""Upgrade-progress graphs from Prometheus: the Grafana dashboard's own PromQL, run as range
queries by the dashboard server on the page's behalf.

The page names a panel, never a query: the server fills in the scale set's labels itself, so
the proxy cannot be used to run arbitrary queries against the user's Prometheus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp

Obj = dict[str, Any]
_SELECTOR = '{namespace=~"$namespace", scaleset=~"$scaleset"}'


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    targets: tuple[tuple[str, str], ...]  # (expr as in the Grafana dashboard, legend)


# Copied from charts/scaleset-operator/dashboards/scaleset-upgrades.json (a unit test keeps
# them equal), so the page and Grafana draw the same series.
PANELS: tuple[Panel, ...] = (
    Panel(
        "progress",
        "Upgrade progress",
        ((f"sum by (state) (scaleset_upgrade_instances{_SELECTOR})", "{{state}}"),),
    ),
    Panel(
        "versions",
        "Instances by image version",
        ((f"sum by (version) (scaleset_instances_by_image_version{_SELECTOR})", "{{version}}"),),
    ),
    Panel(
        "instances",
        "Instances",
        (
            (f"sum(scaleset_capacity{_SELECTOR})", "capacity"),
            (f"sum(scaleset_instances{_SELECTOR})", "instances"),
            (f"sum(scaleset_instances_ready{_SELECTOR})", "ready"),
            (f"sum(scaleset_instances_latest_model{_SELECTOR})", "latest model"),
        ),
    ),
    Panel(
        "rollback",
        "Rollback state",
        ((f"sum by (state) (scaleset_upgrade_rollback_instances{_SELECTOR})", "{{state}}"),),
    ),
)
PANEL_BY_KEY = {p.key: p for p in PANELS}


def _regex_literal(value: str) -> str:
    """A label value as an exact-match regex inside a PromQL double-quoted string."""
    escaped = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", value)
    return escaped.replace("\\", "\\\\").replace('"', '\\"')


def expression(expr: str, namespace: str, scaleset: str) -> str:
    return expr.replace("$namespace", _regex_literal(namespace)).replace(
        "$scaleset", _regex_literal(scaleset)
    )


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the query."""


async def range_query(
    session: aiohttp.ClientSession,
    base: str,
    panel: Panel,
    namespace: str,
    scaleset: str,
    window: tuple[float, float, float],
) -> Obj:
    """The panel's series over (start, end, step), as {title, series: [{name, points}]}."""
    start, end, step = window
    series: list[Obj] = []
    for expr, template in panel.targets:
        params = {
            "query": expression(expr, namespace, scaleset),
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        url = base.rstrip("/") + "/api/v1/query_range"
        try:
            async with session.get(url, params=params) as answer:
                body = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PrometheusError(f"cannot query {base}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus refused the query: {error}")
        for item in body["data"]["result"]:
            series.append(
                {
                    "name": legend(template, item.get("metric") or {}),
                    "points": [[float(t), float(v)] for t, v in item.get("values") or []],
                }
            )
    return {"key": panel.key, "title": panel.title, "series": series}
