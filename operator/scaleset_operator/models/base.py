"""The pydantic base shared by every API model: camelCase on the wire, snake_case in code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A part of an API object; unknown fields are ignored so older operators read newer objects."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The JSON form as stored in the API: camelCase, no nulls (Azure's shapes have none)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
