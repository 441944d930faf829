"""`kubectl scaleset`: the kubectl plugin's command group, its entry point, and the one place
where API errors become exit codes. Each verb group lives in its own module beside this one."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from scaleset_operator.cli.plugin.context import (
    CommandFailed,
    InvalidValue,
    NotFound,
    Unreachable,
    common_options,
)
from scaleset_operator.cli.plugin.get import get
from scaleset_operator.cli.plugin.history import get_os_upgrade_history
from scaleset_operator.cli.plugin.image import image
from scaleset_operator.cli.plugin.instances import protect, update_instances
from scaleset_operator.cli.plugin.plan import plan
from scaleset_operator.cli.plugin.quarantine import quarantine
from scaleset_operator.cli.plugin.rolling_upgrade import rolling_upgrade
from scaleset_operator.cli.plugin.update import update
from scaleset_operator.cli.plugin.wave import wave
from scaleset_operator.dashboard.command import dashboard
from scaleset_operator.k8s.errors import (
    ForbiddenError,
    InvalidError,
    KubeApiError,
    NotFoundError,
    UnavailableError,
)


class PluginGroup(click.Group):
    """Turns the API errors of any command into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NotFoundError as exc:
            raise NotFound(str(exc)) from None
        except InvalidError as exc:
            raise InvalidValue(str(exc)) from None
        except (UnavailableError, ForbiddenError) as exc:
            raise Unreachable(str(exc)) from None
        except KubeApiError as exc:
            raise CommandFailed(str(exc)) from None


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
def cli() -> None:
    """Automatic OS image upgrades of scale sets, the way `az vmss` manages them.

    A scale set (kind ScaleSet, short name vmss) runs its instances as pods; an
    instance's OS image is its OS container's image, published as ImageVersion
    objects. The options -o, -n, --kubeconfig and --context work before or after
    the command name.

    \b
    Examples:
      kubectl scaleset get web
      kubectl scaleset update web --enable-automatic-os-upgrade true
      kubectl scaleset image publish --publisher Canonical --offer ubuntu --sku 22_04-lts \\
          --version 1.2.4 --image registry.example/ubuntu:1.2.4
      kubectl scaleset rolling-upgrade start web --watch
      kubectl scaleset get-os-upgrade-history web -o json
      kubectl scaleset wave get fleet
      kubectl scaleset wave watch fleet --version 1.2.4 --timeout 3h

    \b
    Exit codes:
      0  success
      1  the operation's outcome was a failure (upgrade Faulted or Cancelled,
         request refused, object exists, --timeout passed)
      2  usage error or invalid value (the API server's message is shown)
      3  not found (scale set, instance, upgrade wave, or no rolling upgrade yet)
      4  cannot reach the cluster (no kubeconfig, no connection, no permission)
    """


rolling_upgrade.add_command(plan)
for command in (
    rolling_upgrade,
    get_os_upgrade_history,
    image,
    update,
    update_instances,
    get,
    protect,
    quarantine,
    wave,
    dashboard,
):
    cli.add_command(command)


def _prog_name() -> str:
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    # kubectl runs plugins by file name; users type it with a space. `python -m` runs the
    # package's __main__.py, which stands for the plugin just the same.
    return "kubectl scaleset" if base in ("", "kubectl-scaleset", "__main__.py") else base


def main() -> None:
    cli(prog_name=_prog_name())
