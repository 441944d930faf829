"""`scaleset-operator crds`: print or write the CRDs rendered from the models."""

from __future__ import annotations

from pathlib import Path

import click

from scaleset_operator.models.crd import render_all


@click.command("crds")
@click.option(
    "--write",
    "write_to",
    type=click.Path(file_okay=False, path_type=Path),
    multiple=True,
    help="Write the CRD files into this folder (repeatable) instead of printing them.",
)
def crds(write_to: tuple[Path, ...]) -> None:
    """Print the ScaleSet and ImageVersion CRDs (YAML), as generated from the models.

    \b
    Examples:
      scaleset-operator crds | kubectl apply --server-side -f -
      scaleset-operator crds --write crds --write charts/scaleset-operator/crds
    """
    files = render_all()
    if not write_to:
        click.echo("---\n".join(files.values()), nl=False)
        return
    for folder in write_to:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
            click.echo(f"wrote {folder / name}", err=True)
