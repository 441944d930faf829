"""Rendering for `-o table|json|yaml`: documents as JSON or YAML, tables and key/value blocks
as plain aligned text (like kubectl, so `grep`/`awk` work on them). Pure: strings in and out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml

Cell = str | int | bool | None


def document(doc: Any, fmt: str) -> str:
    """A JSON (two-space indent, key order kept) or YAML rendering of `doc`."""
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    raise ValueError(f"not a document format: {fmt}")


def cell(value: Cell) -> str:
    if value is None or value == "":
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Columns padded to the widest cell, three spaces apart, upper-case headers."""
    text_rows = [[h.upper() for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text_rows) for i in range(len(headers))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in text_rows
    ]
    return "\n".join(lines) + "\n"


def key_values(pairs: Sequence[tuple[str, Cell]]) -> str:
    """`Label:  value` lines, values aligned; pairs whose value is None are left out."""
    shown = [(k, v) for k, v in pairs if v is not None]
    if not shown:
        return ""
    width = max(len(k) for k, _ in shown) + 1
    return "".join(f"{(k + ':').ljust(width)}  {cell(v)}\n" for k, v in shown)


def emit(doc: Any, fmt: str, as_table: Callable[[], str]) -> None:
    """Prints `doc` as JSON/YAML, or the table view that `as_table` renders."""
    click.echo(as_table() if fmt == "table" else document(doc, fmt), nl=False)
