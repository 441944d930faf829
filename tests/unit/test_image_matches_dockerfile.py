"""The operator image built without a container engine declares what the Dockerfile declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scaleset_operator.localcluster.images import (
    APP_TAGS,
    OPERATOR_CONFIG,
    Behaviour,
    ImageConfig,
    dockerfile_config,
    image_env,
    tag_behaviour,
)

ROOT = Path(__file__).resolve().parents[2]


def test_operator_image_config_is_the_dockerfiles() -> None:
    assert dockerfile_config(ROOT / "Dockerfile") == OPERATOR_CONFIG


def test_dockerfile_reading_keeps_the_final_stage_only(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "# syntax=docker/dockerfile:1\n"
        "FROM builder AS build\n"
        "ENV STAGE=build\n"
        "USER 1\n"
        "FROM runtime\n"
        'LABEL a="one, with a comma" \\\n'
        "# a comment inside the continuation\n"
        "      b=two\n"
        "ENV PATH=/x:$PATH \\\n"
        "    HOME=/tmp\n"
        "ENV LEGACY the whole rest\n"
        "expose 8080 53/udp\n"
        "USER 65532:65532\n"
        'ENTRYPOINT ["tool", "run"]\n'
    )

    assert dockerfile_config(dockerfile) == ImageConfig(
        entrypoint=("tool", "run"),
        user="65532:65532",
        exposed_ports=("8080/tcp", "53/udp"),
        env={"PATH": "/x:$PATH", "HOME": "/tmp", "LEGACY": "the whole rest"},
        labels={"a": "one, with a comma", "b": "two"},
    )


def test_image_env_expands_the_base_images_path() -> None:
    env = image_env(OPERATOR_CONFIG)

    assert env["PATH"].startswith("/opt/venv/bin:/usr/local/bin:")
    assert "$" not in env["PATH"]
    assert env["HOME"] == "/tmp"


def _kwok_words() -> set[str]:
    """The tag words the simulated kubelet's header documents (":bad...", ":crash...")."""
    header = (ROOT / "tests/kwok/stages.yaml").read_text().split("apiVersion:")[0]
    return set(re.findall(r"^#\s+:(\w+)\.\.\.", header, flags=re.MULTILINE))


def test_tag_words_are_the_simulated_kubelets() -> None:
    assert _kwok_words() == {b.value for b in Behaviour} - {Behaviour.GOOD}


@pytest.mark.parametrize(
    ("tag", "behaviour"),
    [
        ("v1", Behaviour.GOOD),
        ("2026.01.1", Behaviour.GOOD),
        ("unready-1", Behaviour.UNREADY),
        ("crash-1", Behaviour.CRASH),
        ("bad-1", Behaviour.BAD),
        ("badly", Behaviour.BAD),
    ],
)
def test_tag_behaviour(tag: str, behaviour: Behaviour) -> None:
    assert tag_behaviour(tag) is behaviour


def test_default_tags_cover_every_behaviour() -> None:
    assert {tag_behaviour(tag) for tag in APP_TAGS} == set(Behaviour)
