"""The live progress view of a rolling upgrade: a header and one bar per instance state. Both
`kubectl scaleset rolling-upgrade watch` and the operator's demo show it. Pure: no I/O."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scaleset_operator.models.status import Progress, RollingUpgradeStatus

_STATES = (
    ("successful", "successful_instance_count", "green"),
    ("failed", "failed_instance_count", "red"),
    ("in progress", "in_progress_instance_count", "yellow"),
    ("pending", "pending_instance_count", "blue"),
)


def progress_view(name: str, ru: RollingUpgradeStatus) -> RenderableType:
    """Header line plus one bar per state, each out of all instances in the upgrade."""
    rs = ru.running_status
    progress = ru.progress or Progress()
    counts = [int(getattr(progress, field)) for _, field, _ in _STATES]
    total = max(sum(counts), 1)
    code = rs.code.value if rs else "Unknown"
    header = Text.assemble(
        ("Rolling upgrade of ", ""),
        (name, "bold"),
        (f": {code}", "bold"),
        (f" (started {rs.start_time})" if rs and rs.start_time else "", "dim"),
    )
    bars = Table.grid(padding=(0, 2))
    for (label, _, colour), count in zip(_STATES, counts, strict=True):
        bars.add_row(
            Text(label, style=colour),
            ProgressBar(
                total=total,
                completed=count,
                width=40,
                complete_style=colour,
                finished_style=colour,
            ),
            Text(f"{count}/{sum(counts)}"),
        )
    return Group(header, bars)
