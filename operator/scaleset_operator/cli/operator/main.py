"""`scaleset-operator`: the operator's command group; each command lives in its own module."""

from __future__ import annotations

import importlib

import click

# Where each command lives. Only the chosen command's module is imported: `run` (all that the
# operator image needs) must not need the libraries of the demo and the local cluster, which
# come with the `cli` extra.
COMMANDS = {
    "run": "scaleset_operator.cli.operator.run:run",
    "crds": "scaleset_operator.cli.operator.crds:crds",
    "cluster": "scaleset_operator.cli.operator.cluster:cluster",
    "demo": "scaleset_operator.cli.operator.demo:demo",
}


class _CommandsOnDemand(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        try:
            command = getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            return _missing_extra(cmd_name, exc)
        assert isinstance(command, click.Command)
        return command


def _missing_extra(name: str, exc: ImportError) -> click.Command:
    def explain() -> None:
        raise click.ClickException(
            f"'{name}' needs {exc.name or 'a library'} that this installation lacks; "
            "install the tools with: pip install 'scaleset-operator[cli]'"
        )

    return click.Command(
        name, callback=explain, help="(not installed: pip install 'scaleset-operator[cli]')"
    )


@click.group(cls=_CommandsOnDemand, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scaleset-operator")
def main() -> None:
    """Automatic OS image upgrades, the way Azure VM scale sets do them, for pods.

    \b
    Typical use:
      scaleset-operator cluster up          # a local control plane (etcd, apiserver, kwok, ...)
      scaleset-operator crds | kubectl apply --server-side -f -
      scaleset-operator run                 # all namespaces
      scaleset-operator demo                # the whole story, live
    """
