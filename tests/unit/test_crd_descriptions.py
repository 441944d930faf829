"""Every field of every rendered CRD explains itself, so `kubectl explain` never says
`<no description>`.

The CRDs are taken from `render_all()` (what `scaleset-operator crds` writes), not from `crds/`:
a field added to a model without a description fails here even before regeneration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from scaleset_operator.models.crd import render_all

Schema = dict[str, Any]
# About three lines of `kubectl explain` (80 columns, indented).
LONGEST = 240


def rendered_crds() -> dict[str, Schema]:
    return {name: yaml.safe_load(text) for name, text in render_all().items()}


def properties(crd: Schema) -> Iterator[tuple[str, Schema]]:
    """(JSON path, schema) of each version's root and of every property below it.

    Array items and map values are walked into but not reported themselves: `kubectl explain`
    shows the description of the array or map field, not of its items.
    """
    for version in crd["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        prefix = f"{crd['metadata']['name']}/{version['name']}:"
        yield prefix + ".", root
        yield from _below(root, prefix)


def _below(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _below(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _below(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _below(node["additionalProperties"], f"{path}{{}}")


CRDS = rendered_crds()


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_property_has_a_description(name: str) -> None:
    found = list(properties(CRDS[name]))
    missing = [path for path, node in found if not str(node.get("description", "")).strip()]
    for path in missing:
        print(f"no description: {path}")
    report = "\n".join(missing)
    assert not missing, f"{len(missing)} of {len(found)} fields lack a description:\n{report}"


def test_the_walk_reaches_nested_spec_and_status_fields() -> None:
    """Guards the walker itself: an empty walk would pass the test above vacuously."""
    paths = {path for crd in CRDS.values() for path, _ in properties(crd)}
    vmss = "scalesets.scaleset.dev/v1alpha1:"
    for expected in (
        f"{vmss}.spec.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent",
        f"{vmss}.spec.template.spec.containers[].image",
        f"{vmss}.status.osUpgradeHistory[].rollbackInfo.rollbackError.innererror.errordetail",
        f"{vmss}.status.upgradeRun.batch.surgeIds",
        "imageversions.scaleset.dev/v1alpha1:.spec.excludeFromLatest",
    ):
        assert expected in paths


@pytest.mark.parametrize("name", sorted(CRDS))
def test_descriptions_are_short_single_paragraphs(name: str) -> None:
    for path, node in properties(CRDS[name]):
        text = node.get("description", "")
        assert "\n" not in text, path
        assert len(text) <= LONGEST, (path, len(text))


@pytest.mark.parametrize("name", sorted(CRDS))
def test_descriptions_state_the_default_and_the_range(name: str) -> None:
    """A knob's description says its default and its bounds, in the words of the schema."""
    for path, node in properties(CRDS[name]):
        text = node.get("description", "").lower()
        default = node.get("default")
        if default is not None and not isinstance(default, dict | list):
            assert "default" in text, path
            assert str(default).lower() in text, (path, default)
        if "minimum" in node and "maximum" in node:
            assert f"{node['minimum']} to {node['maximum']}" in text, path
