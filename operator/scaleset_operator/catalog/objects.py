"""ImageVersion objects (as the API returns them) to catalog entries.

An object the model cannot read is skipped: the schema rejects such objects normally, and one
odd entry must not stop every scale set or command that reads the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec


def catalog_entries(items: Iterable[dict[str, Any]]) -> tuple[CatalogEntry, ...]:
    entries = []
    for item in items:
        try:
            spec = ImageVersionSpec.model_validate(item.get("spec") or {})
        except ValidationError:
            continue
        meta = item.get("metadata") or {}
        entries.append(
            CatalogEntry(
                name=str(meta.get("name") or ""),
                spec=spec,
                created_at=meta.get("creationTimestamp"),
            )
        )
    return tuple(entries)
