"""What the operator asks of kopf: server-side selection of pods, no diff bases."""

from __future__ import annotations

import kopf

from scaleset_operator.controller.handlers import tune
from scaleset_operator.models.instance import LABEL_SCALESET


def resource(group: str, version: str, plural: str) -> kopf.Resource:
    return kopf.Resource(group=group, version=version, plural=plural, namespaced=True)


def test_only_pods_of_scale_sets_are_watched() -> None:
    settings = kopf.OperatorSettings()
    tune(settings)
    selectors = settings.watching.label_selectors
    assert list(selectors.collect(resource("", "v1", "pods"))) == [LABEL_SCALESET]
    assert list(selectors.collect(resource("scaleset.dev", "v1alpha1", "scalesets"))) == []
    assert list(selectors.collect(resource("apps", "v1", "deployments"))) == []


def test_no_diff_base_is_built_or_read() -> None:
    settings = kopf.OperatorSettings()
    tune(settings)
    body = kopf.Body({"metadata": {"name": "web-0", "annotations": {}}, "spec": {"a": 1}})
    storage = settings.persistence.diffbase_storage
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
