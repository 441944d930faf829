"""Instances by zone, coloured by their state in the upgrade, for the terminal: the dashboard's
tile grid as rows of cells and counts. The states come from the dashboard's own `tiles`, so
both say the same of every instance. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from scaleset_operator.dashboard.tiles import Tile, TileState, state_counts

if TYPE_CHECKING:
    from rich.console import RenderableType

# The dashboard's colours (dashboard.css), in the nearest of the terminal's basic ones.
COLOURS = {
    TileState.TARGET: "green",
    TileState.IN_FLIGHT: "yellow",
    TileState.FAILED: "red",
    TileState.ROLLED_BACK: "magenta",
    TileState.PENDING: "blue",
    TileState.PROTECTED: "bright_black",
}
CELL = "■"


def _counts(tiles: Sequence[Tile]) -> list[tuple[TileState, int]]:
    """Only the states some instance is in, in the dashboard's order."""
    counts = state_counts(tiles)
    return [(state, counts[state.value]) for state in TileState if counts[state.value]]


def zone_line(zones: Mapping[str, Sequence[Tile]]) -> str:
    """One line for line-by-line output, such as
    `Zones: zone-1: 2 target; zone-2: 1 in-flight, 1 pending`."""
    parts = [
        f"{zone}: " + ", ".join(f"{n} {state.value}" for state, n in _counts(tiles))
        for zone, tiles in zones.items()
    ]
    return "Zones: " + ("; ".join(parts) if parts else "no instances")


def zone_view(zones: Mapping[str, Sequence[Tile]], note: str | None = None) -> RenderableType:
    """A row per zone: one coloured cell per instance (by id, so a cell keeps its place as
    states move), then the count of each state; `note` says why something is missing."""
    # Imported here: rich comes with the `cli` extra, and `zone_line` must work without it.
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    # Only the cells wrap: a count split over two lines reads as two.
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_column(no_wrap=True)
    for zone, tiles in zones.items():
        cells = Text(" ").join(Text(CELL, style=COLOURS[t.state]) for t in tiles)
        counts = Text("  ").join(
            Text(f"{n} {state.value}", style=COLOURS[state]) for state, n in _counts(tiles)
        )
        grid.add_row(Text(zone, style="bold"), cells, counts)
    parts: list[RenderableType] = [Text("Instances by zone", style="bold")]
    if zones:
        parts.append(grid)
    if note:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)
