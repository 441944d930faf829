"""`scaleset-operator`: the operator's command group; each command lives in its own module."""

from __future__ import annotations

import click

from scaleset_operator.cli.operator.cluster import cluster
from scaleset_operator.cli.operator.crds import crds
from scaleset_operator.cli.operator.demo import demo
from scaleset_operator.cli.operator.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (run, crds, cluster, demo):
    main.add_command(command)
