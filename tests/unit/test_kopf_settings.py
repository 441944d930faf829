"""What the operator asks of kopf: no diff bases (all our handlers are event handlers)."""

from __future__ import annotations

import kopf

from scaleset_operator.controller.handlers import tune


def test_no_diff_base_is_built_or_read() -> None:
    settings = kopf.OperatorSettings()
    tune(settings)
    body = kopf.Body({"metadata": {"name": "web-0", "annotations": {}}, "spec": {"a": 1}})
    storage = settings.persistence.diffbase_storage
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
