"""The CRDs in `crds/` are what the models render, structural, and default like the models.

Regenerate `crds/` with:
    PYTHONPATH=operator .venv/bin/python -c \
      "from scaleset_operator.cli.operator.crds import crds; crds(['--write','crds'])"
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaleset_operator.models.crd import imageversion_crd, render_all, scaleset_crd, upgradewave_crd
from scaleset_operator.models.imageversion import ImageVersionSpec
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.upgradewave import UpgradeWaveSpec

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
Schema = dict[str, Any]
# Keys a structural schema may not use (Kubernetes "Specifying a structural schema").
FORBIDDEN = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "nullable"}


def root_schema(crd: Schema) -> Schema:
    (version,) = crd["spec"]["versions"]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path or ".", schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


CRD_BUILDERS = {
    "scalesets": scaleset_crd,
    "imageversions": imageversion_crd,
    "upgradewaves": upgradewave_crd,
}


def test_crds_folder_is_exactly_the_rendered_output() -> None:
    rendered = render_all()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert sorted(on_disk) == sorted(rendered), "crds/ holds stale or missing files"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is out of date: regenerate it"


def test_chart_copies_are_byte_identical() -> None:
    rendered = render_all()
    for folder in REPO.glob("charts/*/crds"):
        copies = {p.name: p.read_text() for p in folder.glob("*.yaml")}
        assert copies == rendered, f"{folder.relative_to(REPO)} differs from crds/"


def test_rendered_files_parse_to_the_crd_objects() -> None:
    rendered = render_all()
    for crd in (scaleset_crd(), imageversion_crd(), upgradewave_crd()):
        text = rendered[f"{crd['metadata']['name']}.yaml"]
        assert text.startswith("# Generated from the pydantic models")
        assert yaml.safe_load(text) == crd


@pytest.mark.parametrize("kind", list(CRD_BUILDERS))
def test_schemas_are_structural(kind: str) -> None:
    schema = root_schema(CRD_BUILDERS[kind]())
    for path, node in nodes(schema):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, path
        assert not FORBIDDEN & set(node), (path, FORBIDDEN & set(node))
        assert "title" not in node, path
        if "properties" in node:
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, path
            assert set(node.get("required", [])) <= set(node["properties"]), path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), path


@pytest.mark.parametrize("kind", list(CRD_BUILDERS))
def test_defaults_are_valid_for_their_own_schema(kind: str) -> None:
    schema = root_schema(CRD_BUILDERS[kind]())
    found = 0
    for path, node in nodes(schema):
        if "default" in node:
            found += 1
            check_value(node["default"], node, path)
    assert found > 0


def check_value(value: Any, node: Schema, path: str) -> None:
    kind = node.get("type")
    expected: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    if kind is not None:
        assert isinstance(value, expected[kind]), (path, value)
    if kind == "integer":
        assert not isinstance(value, bool), (path, value)
    if "enum" in node:
        assert value in node["enum"], (path, value)
    if "minimum" in node:
        assert value >= node["minimum"], (path, value)
    if "maximum" in node:
        assert value <= node["maximum"], (path, value)
    if "maxLength" in node:
        assert len(value) <= node["maxLength"], (path, value)
    if isinstance(value, dict) and "properties" in node:
        unknown = set(value) - set(node["properties"])
        assert not unknown or node.get("x-kubernetes-preserve-unknown-fields"), (path, unknown)
        for key, sub in value.items():
            if key in node["properties"]:
                check_value(sub, node["properties"][key], f"{path}.{key}")


def test_status_carries_no_defaults() -> None:
    """The operator writes the whole status; API-server defaults there would fight it."""
    status = root_schema(scaleset_crd())["properties"]["status"]
    assert [path for path, node in nodes(status) if "default" in node] == []


def apply_defaults(node: Schema, value: Any) -> Any:
    """What the API server does to an object on the way in: fill absent fields' defaults."""
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for name, sub in node["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [apply_defaults(node["items"], v) for v in value]
    return value


MINIMAL_SCALESET = {
    "location": "westeurope",
    "imageReference": {"publisher": "Canonical", "offer": "ubuntu", "sku": "server"},
    "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
}


def test_api_server_defaults_match_the_model_defaults() -> None:
    """A ScaleSet read back from the API server means what the operator's model thinks."""
    spec_schema = root_schema(scaleset_crd())["properties"]["spec"]
    defaulted = apply_defaults(spec_schema, MINIMAL_SCALESET)
    model = ScaleSetSpec.model_validate(MINIMAL_SCALESET).wire()
    # List defaults are not rendered (an absent list and an empty one mean the same).
    assert model.pop("volumeClaimTemplates") == []
    assert defaulted == model
    assert defaulted["capacity"] == 1
    assert defaulted["imageReference"]["version"] == "latest"
    policy = defaulted["upgradePolicy"]
    assert policy["mode"] == "Manual"
    assert policy["healthTimeout"] == "PT5M"
    assert policy["automaticOSUpgradePolicy"] == {
        "enableAutomaticOSUpgrade": False,
        "disableAutomaticRollback": False,
    }
    assert policy["rollingUpgradePolicy"] == {
        "maxBatchInstancePercent": 20,
        "maxUnhealthyInstancePercent": 20,
        "maxUnhealthyUpgradedInstancePercent": 20,
        "pauseTimeBetweenBatches": "PT0S",
        "prioritizeUnhealthyInstances": False,
        "enableCrossZoneUpgrade": False,
        "maxSurge": False,
        "rollbackFailedInstancesOnPolicyBreach": False,
        "disruptionBudgetTimeout": "PT30M",
        "onDisruptionBudgetTimeout": "Fault",
    }


def test_partial_blocks_get_the_remaining_defaults() -> None:
    spec_schema = root_schema(scaleset_crd())["properties"]["spec"]
    partial = {
        **MINIMAL_SCALESET,
        "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": {"maxSurge": True}},
    }
    defaulted = apply_defaults(spec_schema, partial)
    assert defaulted["upgradePolicy"]["rollingUpgradePolicy"]["maxBatchInstancePercent"] == 20
    assert (
        defaulted["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is False
    )
    assert ScaleSetSpec.model_validate(defaulted) == ScaleSetSpec.model_validate(partial)


def test_imageversion_defaults_match_the_model() -> None:
    spec_schema = root_schema(imageversion_crd())["properties"]["spec"]
    minimal = {"publisher": "p", "offer": "o", "sku": "s", "version": "1.0", "image": "i:1"}
    defaulted = apply_defaults(spec_schema, minimal)
    model = ImageVersionSpec.model_validate(minimal).wire()
    assert model.pop("targetRegions") == []
    assert defaulted == model


def test_required_fields_follow_the_models() -> None:
    crd = scaleset_crd()
    spec = root_schema(crd)["properties"]["spec"]
    assert spec["required"] == ["imageReference", "location", "template"]
    assert root_schema(crd)["required"] == ["spec"]
    image_spec = root_schema(imageversion_crd())["properties"]["spec"]
    assert image_spec["required"] == ["image", "version"]


def resolve_path(schema: Schema, json_path: str) -> Schema | None:
    node: Schema | None = schema
    for part in json_path.strip(".").split("."):
        if node is None:
            return None
        node = node.get("properties", {}).get(part)
    return node


def test_printer_columns_and_scale_paths_point_at_schema_fields() -> None:
    crd = scaleset_crd()
    (version,) = crd["spec"]["versions"]
    schema = root_schema(crd)
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata"):
            continue
        target = resolve_path(schema, column["jsonPath"])
        assert target is not None, column
        assert target["type"] == column["type"], column
    scale = version["subresources"]["scale"]
    for key, kind in (
        ("specReplicasPath", "integer"),
        ("statusReplicasPath", "integer"),
        ("labelSelectorPath", "string"),
    ):
        target = resolve_path(schema, scale[key])
        assert target is not None, key
        assert target["type"] == kind, key
    assert "status" in version["subresources"]
    assert crd["spec"]["names"]["shortNames"] == ["vmss"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert imageversion_crd()["spec"]["scope"] == "Cluster"


def cel_pattern(rule: str) -> str | None:
    match = re.match(r"^self\.matches\('((?:[^'\\]|\\.)*)'\)", rule)
    if match is None:
        return None
    return re.sub(r"\\(.)", r"\1", match.group(1))


def model_patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from model_patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from model_patterns(value)


@pytest.mark.parametrize("kind", list(CRD_BUILDERS))
def test_pattern_rules_are_the_models_patterns(kind: str) -> None:
    """CEL string escaping must give back the model's regular expression exactly."""
    model = {
        "scalesets": ScaleSetSpec,
        "imageversions": ImageVersionSpec,
        "upgradewaves": UpgradeWaveSpec,
    }[kind]
    patterns = set(model_patterns(model.model_json_schema(by_alias=True)))
    seen = set()
    for path, node in nodes(root_schema(CRD_BUILDERS[kind]())):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"], path
            pattern = cel_pattern(rule["rule"])
            if pattern is not None:
                assert pattern in patterns, (path, pattern)
                seen.add(pattern)
    assert seen == patterns
