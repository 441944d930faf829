"""The UpgradeWave resource: the order in which platform OS upgrades reach many scale sets.

A wave is cluster-scoped. Its stages select ScaleSets by label in any namespace; a newly
published version reaches stage n+1 only after every ScaleSet of stage n completed on it and
stayed healthy for the stage's soak time. The status is the record of each version's progress.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.durations import ISO8601_DURATION

PLURAL = "upgradewaves"
KIND = "UpgradeWave"
DESCRIPTION = (
    "Stages of scale sets, in any namespace, that platform OS upgrades reach in turn: a new "
    "image version goes to a stage only after every scale set of the stage before completed "
    "on it and stayed healthy for that stage's soak time."
)
STAGE_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    """One condition on a label, as in any Kubernetes label selector."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: SelectorOperator = Field(
        description="In, NotIn, Exists or DoesNotExist: how the label's value is compared."
    )
    values: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="The values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """Which ScaleSets a stage holds, by their labels; both parts must match. An empty
    selector selects every ScaleSet."""

    match_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels a ScaleSet must carry with exactly these values.",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=32,
        description="Further conditions on the ScaleSet's labels.",
    )


class WaveStage(ApiModel):
    """One stage: the ScaleSets it holds and how long they soak on a new version."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=STAGE_NAME,
        description="The stage's name, unique in the wave (lower case, digits and '-'), such "
        "as test or production.",
    )
    selector: LabelSelector = Field(
        description="The ScaleSets of this stage, in any namespace. A ScaleSet that two stages "
        "select belongs to the first of them."
    )
    soak_time: str = Field(
        default="PT1H",
        pattern=ISO8601_DURATION,
        description="How long every ScaleSet of this stage must stay healthy on a new version, "
        "after the last of them completed on it, before the next stage gets it; an ISO 8601 "
        "duration. Default PT1H.",
    )


class UpgradeWaveSpec(ApiModel):
    """The stages, in the order a new version reaches them."""

    stages: list[WaveStage] = Field(
        min_length=1,
        max_length=16,
        description="The stages in order; the first gets a new version as soon as its own "
        "schedule allows, each later one after the stage before it soaked.",
    )


class VersionPhase(StrEnum):
    """Where a version is in the wave."""

    ROLLING = "Rolling"  # the scale sets of its stage are still upgrading to it
    SOAKING = "Soaking"  # all of its stage completed; the soak time runs
    COMPLETED = "Completed"  # every stage completed on it
    FAULTED = "Faulted"  # a scale set of an admitted stage quarantined it


class StageEntry(ApiModel):
    """When a version reached a stage and when that stage was done with it."""

    stage: str = Field(description="The stage's name.")
    admitted_at: str = Field(description="When the version reached the stage (RFC 3339).")
    completed_at: str | None = Field(
        default=None,
        description="When every ScaleSet of the stage had completed on it (RFC 3339); absent "
        "while some have not. It is set again when the soak restarts.",
    )


class WaveVersion(ApiModel):
    """One image version's progress through the wave."""

    image: str = Field(
        description="The image family: publisher:offer:sku, or gallery/image for a gallery image."
    )
    version: str = Field(description="The version.")
    phase: VersionPhase = Field(description="Rolling, Soaking, Completed or Faulted.")
    stage: str = Field(description="The last stage it has reached.")
    stage_index: int = Field(ge=0, description="That stage's position, from 0.")
    soak_ends_at: str | None = Field(
        default=None,
        description="While Soaking: when the next stage gets it, if the stage stays healthy.",
    )
    waiting_for: str | None = Field(
        default=None,
        description="What it waits for, in words: the ScaleSets of the stage not done with it "
        "yet and why, or the soak.",
    )
    faulted_by: str | None = Field(
        default=None,
        description="While Faulted: the ScaleSet (namespace/name) that quarantined it; no later "
        "stage gets it. Clearing that quarantine (kubectl scaleset quarantine clear) lets the "
        "wave go on.",
    )
    stages: list[StageEntry] = Field(
        default_factory=list, description="The stages it has reached, in order."
    )


class StageMembers(ApiModel):
    """The ScaleSets a stage holds now."""

    name: str = Field(description="The stage's name.")
    scale_sets: list[str] = Field(
        default_factory=list, description="namespace/name of each ScaleSet of the stage."
    )


class UpgradeWaveStatus(ApiModel):
    """Where each new version is in the wave and why it waits; written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="The spec generation this status was computed from."
    )
    stages: list[StageMembers] = Field(
        default_factory=list, description="The ScaleSets each stage holds."
    )
    versions: list[WaveVersion] = Field(
        default_factory=list,
        description="Image versions newer than what some ScaleSet of the wave runs, newest "
        "first per image; a completed version stays until a newer one completes.",
    )
    conflicts: list[str] = Field(
        default_factory=list,
        description="ScaleSets that this wave selects but another wave governs (the wave whose "
        "name sorts first), as namespace/name: wave.",
    )
    summary: str | None = Field(
        default=None, description="One line: the newest version and where it is."
    )
