"""Renders the CustomResourceDefinitions from the pydantic models.

The models are the source of truth; `crds/` and the chart's copy are this module's output
(a test keeps them identical). CEL rules carry the cross-field and transition checks so the
API server, not the operator, rejects bad input with a readable message.
"""

# Long module: the schema conversion and every CEL rule of the three CRDs in one place, so that a
# reader sees all that the API server checks without hunting through files.

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from scaleset_operator.models import imageversion, scaleset, upgradewave
from scaleset_operator.models.durations import ISO8601_DURATION
from scaleset_operator.models.imageversion import ImageVersionSpec
from scaleset_operator.models.scaleset import GROUP, TIME_OF_DAY, VERSION, ScaleSetSpec
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.models.upgradewave import STAGE_NAME, UpgradeWaveSpec, UpgradeWaveStatus
from scaleset_operator.models.versions import DOTTED_VERSION

Schema = dict[str, Any]

# Readable messages for the patterns the models declare; the API server's own pattern
# message would print the raw regular expression.
_PATTERN_MESSAGES = {
    ISO8601_DURATION: "must be an ISO 8601 duration such as PT5M, PT30S or PT1H",
    DOTTED_VERSION: "must be a dotted numeric version such as 1.2.3",
    TIME_OF_DAY: "must be a time of day HH:MM (24 h, UTC) such as 02:30",
    STAGE_NAME: "must be lower case letters, digits and '-', such as production",
    r"^(latest|[0-9]{1,9}(\.[0-9]{1,9}){0,3})$": (
        "must be 'latest' or a dotted numeric version such as 1.2.3"
    ),
}

_PLATFORM_OR_GALLERY = (
    "(has(self.publisher) && has(self.offer) && has(self.sku) && !has(self.gallery) && "
    "!has(self.{gimage})) || (!has(self.publisher) && !has(self.offer) && !has(self.sku) && "
    "has(self.gallery) && has(self.{gimage}))"
)


def _opt(field: str, obj: str = "self") -> str:
    return f"(has({obj}.{field}) ? {obj}.{field} : '')"


def _immutable(fields: list[str]) -> str:
    return " && ".join(f"{_opt(f)} == {_opt(f, 'oldSelf')}" for f in fields)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].split("/")[-1]]
            merged = {**_inline(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline(merged, defs)
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            # Optional[X] -> X: we never store nulls, the field is simply left out.
            non_null = [s for s in any_of if s.get("type") != "null"]
            if len(non_null) == 1:
                rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
                return _inline({**non_null[0], **rest}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k not in ("$defs", "title")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _structural(node: Schema, *, spec_defaults: bool) -> Schema:
    """Turns pydantic's JSON schema into a structural OpenAPI v3 schema."""
    kind = node.get("type")
    out: Schema
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        out = _structural_object(node, spec_defaults=spec_defaults)
    elif kind == "array":
        items = _structural(node.get("items", {}), spec_defaults=spec_defaults)
        out = {"type": "array", "items": items}
    elif kind is None and "enum" in node:
        out = {"type": "string"}
    elif kind is not None:
        out = {"type": kind}
    elif not node:
        return {"x-kubernetes-preserve-unknown-fields": True}
    else:
        out = {}
    out.update(_bounds(node))
    if spec_defaults and "default" in node and not isinstance(node["default"], dict | list):
        out["default"] = node["default"]
    pattern = node.get("pattern")
    if pattern is not None:
        # A bound on the length keeps the API server's CEL cost estimate within budget.
        out.setdefault("maxLength", 8 if pattern == TIME_OF_DAY else 48)
        out["x-kubernetes-validations"] = [_pattern_rule(pattern)]
    if "description" in node:
        # Right after the type, so the YAML reads like `kubectl explain`; a docstring's line
        # breaks would show in `kubectl explain` as blank lines, so the text is unwrapped.
        head = {"type": out.pop("type")} if "type" in out else {}
        out = {**head, "description": " ".join(node["description"].split()), **out}
    return out


def _structural_object(node: Schema, *, spec_defaults: bool) -> Schema:
    out: Schema = {"type": "object"}
    props = node.get("properties")
    if props:
        required = set(node.get("required", []))
        out["properties"] = {}
        for name, sub in props.items():
            child = _structural(sub, spec_defaults=spec_defaults)
            if (
                spec_defaults
                and name not in required
                and child.get("type") == "object"
                and "properties" in child
                and "default" not in child
            ):
                # An absent block still gets its fields' defaults, spelled out: the API
                # server checks a default against the CEL rules without nested defaulting.
                child["default"] = _defaults_of(child)
            out["properties"][name] = child
        if required:
            out["required"] = sorted(required)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out["additionalProperties"] = _structural(extra, spec_defaults=spec_defaults)
    elif not props:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


_BOUNDS = ("enum", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")


def _bounds(node: Schema) -> Schema:
    out = {key: node[key] for key in _BOUNDS if key in node}
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"] + 1
    return out


def _pattern_rule(pattern: str) -> Schema:
    rule = f"self.matches({_cel_string(pattern)})"
    if pattern == ISO8601_DURATION:
        # The expression alone would accept the empty designators `P` and `PT`.
        rule += " && self != 'P' && !self.endsWith('T')"
    return {"rule": rule, "message": _PATTERN_MESSAGES[pattern]}


def _pod_template_schema(description: str) -> Schema:
    """Open schema for the pod template, with just enough structure for CEL to see the
    containers (CEL cannot look inside a field that only preserves unknown fields)."""
    container = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "Container name.", "maxLength": 63},
            "image": {
                "type": "string",
                "description": "Container image; the OS container's is set from imageReference.",
                "maxLength": 1024,
            },
        },
    }
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "description": "Labels and annotations of every instance's pod.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "spec": {
                "type": "object",
                "description": "Pod spec of every instance.",
                "x-kubernetes-preserve-unknown-fields": True,
                "required": ["containers"],
                "properties": {
                    "containers": {
                        "type": "array",
                        "description": "The instance's containers, 1 to 32; one of them is "
                        "the OS container (osContainerName).",
                        "minItems": 1,
                        "maxItems": 32,
                        "items": container,
                    }
                },
            },
        },
    }


def _defaults_of(node: Schema) -> Schema:
    return {
        name: sub["default"] for name, sub in node.get("properties", {}).items() if "default" in sub
    }


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _schema_of(model: type[BaseModel], *, spec_defaults: bool) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    inlined = _inline(raw, raw.get("$defs", {}))
    return _structural(inlined, spec_defaults=spec_defaults)


def _add_rules(node: Schema, rules: list[dict[str, str]]) -> None:
    node.setdefault("x-kubernetes-validations", []).extend(rules)


def scaleset_crd() -> Schema:
    spec = _schema_of(ScaleSetSpec, spec_defaults=True)
    status = _schema_of(ScaleSetStatus, spec_defaults=False)
    props = spec["properties"]
    image_ref = props["imageReference"]
    _add_rules(
        image_ref,
        [
            {
                "rule": _PLATFORM_OR_GALLERY.format(gimage="image"),
                "message": "imageReference needs publisher, offer and sku (a platform image) "
                "or gallery and image (a gallery image), not both",
            },
            {
                "rule": _immutable(["publisher", "offer", "gallery", "image"]),
                "message": "imageReference publisher and offer (or gallery and image) cannot "
                "change after creation; only sku and version may change",
            },
        ],
    )
    rolling = props["upgradePolicy"]["properties"]["rollingUpgradePolicy"]
    _add_rules(
        rolling,
        [
            {
                "rule": "self.maxBatchInstancePercent <= self.maxUnhealthyInstancePercent",
                "message": "maxBatchInstancePercent must not be above maxUnhealthyInstancePercent",
            }
        ],
    )
    probe = props["healthProbe"]
    _add_rules(
        probe,
        [
            {
                "rule": "self.source != 'LoadBalancer' || has(self.serviceName)",
                "message": "healthProbe.serviceName is required when source is LoadBalancer",
            },
            {
                "rule": "self.source != 'ApplicationHealth' || has(self.conditionType)",
                "message": "healthProbe.conditionType is required when source is ApplicationHealth",
            },
        ],
    )
    props["template"] = _pod_template_schema(props["template"]["description"])
    _add_rules(
        spec,
        [
            {
                "rule": "!self.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade "
                "|| self.imageReference.version == 'latest'",
                "message": "imageReference.version must be 'latest' when "
                "automaticOSUpgradePolicy.enableAutomaticOSUpgrade is true",
            },
            {
                "rule": "!has(self.osContainerName) || "
                "self.template.spec.containers.exists(c, c.name == self.osContainerName)",
                "message": "osContainerName must name one of template.spec.containers",
            },
        ],
    )
    return _crd(
        plural=scaleset.PLURAL,
        kind=scaleset.KIND,
        description=scaleset.DESCRIPTION,
        scope="Namespaced",
        short_names=["vmss"],
        spec=spec,
        status=status,
        columns=[
            ("Capacity", "integer", ".spec.capacity", "Desired instances"),
            ("Ready", "integer", ".status.readyInstances", "Healthy instances"),
            ("Latest-Model", "integer", ".status.latestModelInstances", "On the latest model"),
            ("Image-Version", "string", ".status.currentImageVersion", "Model image version"),
            ("Upgrade", "string", ".status.upgradeState", "Latest OS upgrade state"),
            # A string, not a date: kubectl renders a future date as "<invalid>".
            (
                "Next-Eligible",
                "string",
                ".status.outOfDate.nextEligibleTime",
                "When the next out-of-date instance may be upgraded",
            ),
        ],
        scale=True,
    )


def imageversion_crd() -> Schema:
    spec = _schema_of(ImageVersionSpec, spec_defaults=True)
    _add_rules(
        spec,
        [
            {
                "rule": _PLATFORM_OR_GALLERY.format(gimage="galleryImage"),
                "message": "an ImageVersion needs publisher, offer and sku, or gallery and "
                "galleryImage, not both",
            },
            {
                "rule": _immutable(["publisher", "offer", "sku", "gallery", "galleryImage"])
                + " && self.version == oldSelf.version && self.image == oldSelf.image",
                "message": "a published version is immutable: only excludeFromLatest, "
                "targetRegions and publishedDate may change",
            },
        ],
    )
    return _crd(
        plural=imageversion.PLURAL,
        kind=imageversion.KIND,
        description=imageversion.DESCRIPTION,
        scope="Cluster",
        short_names=["imgver"],
        spec=spec,
        status=None,
        columns=[
            ("Publisher", "string", ".spec.publisher", ""),
            ("Offer", "string", ".spec.offer", ""),
            ("Sku", "string", ".spec.sku", ""),
            ("Gallery", "string", ".spec.gallery", ""),
            ("Version", "string", ".spec.version", ""),
            ("Image", "string", ".spec.image", ""),
            ("Excluded", "boolean", ".spec.excludeFromLatest", "Excluded from latest"),
        ],
        scale=False,
    )


def upgradewave_crd() -> Schema:
    spec = _schema_of(UpgradeWaveSpec, spec_defaults=True)
    status = _schema_of(UpgradeWaveStatus, spec_defaults=False)
    stages = spec["properties"]["stages"]
    _add_rules(
        stages,
        [
            {
                "rule": "self.all(a, self.exists_one(b, b.name == a.name))",
                "message": "stage names must be unique in the wave",
            }
        ],
    )
    requirement = stages["items"]["properties"]["selector"]["properties"]["matchExpressions"]
    _add_rules(
        requirement["items"],
        [
            {
                "rule": "(self.operator in ['In', 'NotIn']) == (has(self.values) && "
                "size(self.values) > 0)",
                "message": "values must be given for In and NotIn, and only for them",
            }
        ],
    )
    return _crd(
        plural=upgradewave.PLURAL,
        kind=upgradewave.KIND,
        description=upgradewave.DESCRIPTION,
        scope="Cluster",
        short_names=["wave"],
        spec=spec,
        status=status,
        columns=[
            ("Status", "string", ".status.summary", "The newest version and where it is"),
        ],
        scale=False,
    )


def _crd(
    *,
    plural: str,
    kind: str,
    description: str,
    scope: str,
    short_names: list[str],
    spec: Schema,
    status: Schema | None,
    columns: list[tuple[str, str, str, str]],
    scale: bool,
) -> Schema:
    properties: Schema = {"spec": spec}
    subresources: Schema = {}
    if status is not None:
        properties["status"] = status
        subresources["status"] = {}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.capacity",
            "statusReplicasPath": ".status.capacity",
            "labelSelectorPath": ".status.selector",
        }
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": description,
                "required": ["spec"],
                "properties": properties,
            }
        },
        "additionalPrinterColumns": [
            {"name": n, "type": t, "jsonPath": p, **({"description": d} if d else {})}
            for n, t, p, d in columns
        ]
        + [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
    }
    if subresources:
        version["subresources"] = subresources
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short_names,
                "categories": ["scaleset"],
            },
            "scope": scope,
            "versions": [version],
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """No `&id001` anchors for repeated default blocks: generated CRDs should read plainly."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def render_all() -> dict[str, str]:
    """File name -> YAML text, exactly what `crds/` holds."""
    out = {}
    for crd in (scaleset_crd(), imageversion_crd(), upgradewave_crd()):
        name = crd["metadata"]["name"]
        header = "# Generated from the pydantic models by `scaleset-operator crds`; do not edit.\n"
        out[f"{name}.yaml"] = header + yaml.dump(
            crd, Dumper=_PlainDumper, sort_keys=False, width=100
        )
    return out
