"""The kwok configuration (node and pod stages) kept in ``tests/kwok/stages.yaml``.

Read from the repository in a checkout; a wheel carries it as ``scaleset_operator/_data/kwok``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from scaleset_operator.localcluster.binaries import repo_root

STAGES_FILE = "stages.yaml"
START_STAGE = "pod-container-start"
# The stages that put a container into "ContainerCreating" compute its start time from this.
DEFAULT_DELAY = '$delay := "700ms"'
# How every pod stage's status patch begins: the copy's resourceVersion makes the write conditional
# (see stages.yaml).
RESOURCE_VERSION_GUARD = "metadata:\n  resourceVersion: {{ .metadata.resourceVersion | Quote }}\n"


def default_start_delay() -> float:
    """Seconds from a container's (re)start write to its start write, unless a pod or the
    cluster says otherwise."""
    m = re.search(r'"(\d+)ms"', DEFAULT_DELAY)
    assert m is not None
    return int(m.group(1)) / 1000


def stages_text() -> str:
    # The checkout first: an editable install holds a copy of the data made at install time.
    root = repo_root()
    if root is not None and (root / "tests" / "kwok" / STAGES_FILE).is_file():
        return (root / "tests" / "kwok" / STAGES_FILE).read_text()
    try:
        packaged = resources.files("scaleset_operator") / "_data" / "kwok" / STAGES_FILE
        if packaged.is_file():
            return packaged.read_text()
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        pass
    raise FileNotFoundError(
        f"kwok {STAGES_FILE} not found in a repository checkout nor in the package data"
    )


class _LiteralDumper(yaml.SafeDumper):
    """Keeps multi-line templates readable in the written copy."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def status_templates(stage: dict[str, Any]) -> list[str]:
    """The templates of a stage's writes to the status subresource."""
    nxt = stage["spec"].get("next", {})
    found = [nxt["statusTemplate"]] if "statusTemplate" in nxt else []
    found += [p["template"] for p in nxt.get("patches", []) if p.get("subresource") == "status"]
    return found


def render(pod_start_delay: float | None = None) -> str:
    """The configuration text, with the pod start delay (seconds) replaced when given."""
    text = stages_text()
    if pod_start_delay is None:
        return text
    millis = round(pod_start_delay * 1000)
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(text) if d]
    replaced = 0
    for doc in docs:
        if doc.get("kind") != "Stage":
            continue
        spec = doc["spec"]
        for patch in spec.get("next", {}).get("patches", []):
            template = patch.get("template", "")
            if DEFAULT_DELAY in template:
                patch["template"] = template.replace(DEFAULT_DELAY, f'$delay := "{millis}ms"')
                replaced += 1
        if doc["metadata"]["name"] == START_STAGE:
            spec.setdefault("delay", {})["durationMilliseconds"] = millis
    if replaced == 0:
        raise ValueError(f"no stage in {STAGES_FILE} sets {DEFAULT_DELAY}")
    return yaml.dump_all(docs, Dumper=_LiteralDumper, sort_keys=False, width=1000)


def write(path: Path, pod_start_delay: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(pod_start_delay))
    return path
