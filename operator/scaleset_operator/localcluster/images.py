"""OCI images for clusters with real nodes, built and pushed with crane alone (no container engine).

The test images (the pod sandbox ``pause`` and ``app`` tags that behave by name) come from one
static busybox; the operator image (operatorimage.py) shares the layers, config and push helpers
here. Tooling for the local cluster and the tests: the operator never imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import string
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from scaleset_operator.localcluster.binaries import env_var_for, nodebin_dir

PAUSE_IMAGE = "pause:local"
APP_REPOSITORY = "app"
APP_TAGS = ("v1", "v2", "v3", "unready-1", "crash-1", "bad-1")
APP_PORT = 8080
# The readiness probe's path in every app image: 200 in good ones, 503 in unready ones. busybox
# httpd chooses a status only in a CGI script, so /ready is an empty folder: httpd redirects it
# to /ready/ (the kubelet follows redirects on the same host), and with no index.html there it
# runs /cgi-bin/index.cgi.
READY_PATH = "/ready"
OPERATOR_REPOSITORY = "scaleset-operator"
# A hash of everything an image is built from: an image that carries it is not built again.
CONTENT_LABEL = "dev.scaleset-operator.local.content"

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """An image could not be built or pushed."""


class Behaviour(StrEnum):
    GOOD = "good"
    UNREADY = "unready"
    CRASH = "crash"
    BAD = "bad"


def tag_behaviour(tag: str) -> Behaviour:
    """The simulated kubelet's convention (tests/kwok/stages.yaml): the tag's first word decides."""
    for behaviour in (Behaviour.BAD, Behaviour.CRASH, Behaviour.UNREADY):
        if tag.startswith(behaviour.value):
            return behaviour
    return Behaviour.GOOD


@dataclass(frozen=True)
class Registry:
    address: str

    def ref(self, name: str, tag: str) -> str:
        return f"{self.address}/{name}:{tag}"


@dataclass(frozen=True)
class ImageConfig:
    """What a Dockerfile declares of an image's config; env values may use ``$VAR`` of the base."""

    entrypoint: tuple[str, ...] = ()
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


# The Dockerfile's final stage, restated; a unit test keeps the two equal.
OPERATOR_CONFIG = ImageConfig(
    entrypoint=("scaleset-operator", "run"),
    user="65532:65532",
    exposed_ports=("8080/tcp", "8081/tcp"),
    env={
        "PATH": "/opt/venv/bin:$PATH",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/tmp",
    },
    labels={
        "org.opencontainers.image.title": "scaleset-operator",
        "org.opencontainers.image.description": (
            "Automatic OS image upgrades, the way Azure VM scale sets do them, for pods"
        ),
        "org.opencontainers.image.licenses": "Apache-2.0",
    },
)
# What python:3.11-slim sets, which the Dockerfile's final stage inherits and its $PATH expands.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


def image_env(config: ImageConfig) -> dict[str, str]:
    """The environment an image built from ``config`` on python:3.11-slim ends up with."""
    declared = {k: string.Template(v).safe_substitute(BASE_ENV) for k, v in config.env.items()}
    return {**BASE_ENV, **declared}


def dockerfile_config(path: Path) -> ImageConfig:
    """What the final stage of a Dockerfile declares: ENTRYPOINT (JSON form), USER, EXPOSE, ENV
    and LABEL. Each ``FROM`` starts over, since earlier stages only build."""
    config = ImageConfig()
    for instruction, rest in _instructions(path.read_text()):
        if instruction == "FROM":
            config = ImageConfig()
        elif instruction == "ENTRYPOINT":
            config = replace(config, entrypoint=tuple(json.loads(rest)))
        elif instruction == "USER":
            config = replace(config, user=rest)
        elif instruction == "EXPOSE":
            ports = tuple(port if "/" in port else f"{port}/tcp" for port in rest.split())
            config = replace(config, exposed_ports=config.exposed_ports + ports)
        elif instruction == "ENV":
            config = replace(config, env={**config.env, **_pairs(rest)})
        elif instruction == "LABEL":
            config = replace(config, labels={**config.labels, **_pairs(rest)})
    return config


def _instructions(text: str) -> Iterable[tuple[str, str]]:
    logical = ""
    for line in text.splitlines():
        # Docker drops comment lines even in the middle of a continued instruction.
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        if (logical + line).strip():
            word, _, rest = (logical + line).strip().partition(" ")
            yield word.upper(), rest.strip()
        logical = ""


def _pairs(rest: str) -> dict[str, str]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:  # the legacy form: ENV KEY the value
        return {words[0]: rest.split(None, 1)[1]}
    return dict(word.split("=", 1) for word in words)


def find_crane() -> Path:
    """crane, by ``TEST_ASSET_CRANE``, then ``PATH``, then the node binaries' cache folder."""
    variable = env_var_for("crane")
    if explicit := os.environ.get(variable):
        if not _executable(Path(explicit)):
            raise ImageError(f"{variable}={explicit} is not an executable file")
        return Path(explicit)
    on_path = shutil.which("crane")
    for path in ([Path(on_path)] if on_path else []) + [nodebin_dir() / "crane"]:
        if _executable(path):
            return path
    raise ImageError(
        f"crane not found: set {variable}, put crane on PATH, or build it into "
        f"{nodebin_dir()} with `hack/testbin.sh node`"
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# ---- test images ---------------------------------------------------------------------------

_APPLETS = ("sh", "httpd", "sleep", "kill", "cat", "echo", "printf", "ls", "env", "id", "wget")
_SCRIPTS = {
    # PID 1 gets no default action for SIGTERM: without the trap the sandbox ignores it and the
    # kubelet waits out the grace period. `sleep &` + `wait` lets the trap run at once.
    "pause": "trap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n",
    # busybox httpd as PID 1 ignores SIGTERM, so a shell runs it and stops it: an image change
    # then restarts the container in about a second, not after the grace period.
    "serve": (
        f"httpd -f -p {APP_PORT} -h /www &\nserver=$!\n"
        "trap 'kill $server; wait $server; exit 0' TERM INT\nwait $server\n"
    ),
    "crash": "echo 'crash image: exiting with code 1' >&2\nsleep 1\nexit 1\n",
}
_NONROOT = "65532:65532"


@dataclass(frozen=True)
class Entry:
    mode: int
    data: bytes | None = None  # None and no link: a folder
    link: str | None = None


def build_test_images(
    crane: Path,
    registry: Registry,
    workdir: Path,
    *,
    tags: Iterable[str] = APP_TAGS,
    log: Log | None = None,
) -> dict[str, str]:
    """Pushes ``pause:local`` and ``app:<tag>`` for each tag but ``bad…`` ones (so that pulling
    those fails for real); returns ``name:tag`` -> reference, the unpushed ones included."""
    say = log or quiet
    workdir.mkdir(parents=True, exist_ok=True)
    base = _layer(workdir, "busybox", _busybox())
    refs = {PAUSE_IMAGE: registry.ref(*PAUSE_IMAGE.split(":"))}
    pause = ImageConfig(entrypoint=("/bin/pause",), user=_NONROOT, env={"PATH": "/bin"})
    _ensure(crane, refs[PAUSE_IMAGE], [base], pause, say)
    for tag in tags:
        ref = refs[f"{APP_REPOSITORY}:{tag}"] = registry.ref(APP_REPOSITORY, tag)
        behaviour = tag_behaviour(tag)
        if behaviour is Behaviour.BAD:
            continue
        www = _layer(workdir, f"app-{tag}", _www(tag, behaviour))
        command = "/bin/crash" if behaviour is Behaviour.CRASH else "/bin/serve"
        config = replace(pause, entrypoint=(command,), exposed_ports=(f"{APP_PORT}/tcp",))
        _ensure(crane, ref, [base, www], config, say)
    return refs


def _busybox() -> dict[str, Entry]:
    found = shutil.which("busybox")
    if found is None:
        raise ImageError("busybox is not installed (apt-get install busybox-static)")
    busybox = Path(found).resolve()
    linkage = subprocess.run(["ldd", str(busybox)], capture_output=True, text=True, check=False)
    if "=>" in linkage.stdout:
        raise ImageError(f"{busybox} is not statically linked (apt-get install busybox-static)")
    entries = {"bin/busybox": Entry(0o755, busybox.read_bytes()), "tmp": Entry(0o1777)}
    entries |= {f"bin/{applet}": Entry(0o777, link="busybox") for applet in _APPLETS}
    entries |= {f"bin/{n}": Entry(0o755, f"#!/bin/sh\n{s}".encode()) for n, s in _SCRIPTS.items()}
    return entries | accounts("app")


def _www(tag: str, behaviour: Behaviour) -> dict[str, Entry]:
    status = "503 Service Unavailable" if behaviour is Behaviour.UNREADY else "200 OK"
    ready = f"printf 'Status: {status}\\r\\nContent-Type: text/plain\\r\\n\\r\\n{tag}\\n'\n"
    return {
        "www/version": Entry(0o644, tag.encode()),
        f"www{READY_PATH}": Entry(0o755),
        "www/cgi-bin/index.cgi": Entry(0o755, f"#!/bin/sh\n{ready}".encode()),
    }


def accounts(user: str) -> dict[str, Entry]:
    passwd = f"root:x:0:0::/root:/sbin/nologin\n{user}:x:65532:65532::/nonexistent:/sbin/nologin\n"
    return {
        "etc/passwd": Entry(0o644, passwd.encode()),
        "etc/group": Entry(0o644, f"root:x:0:\n{user}:x:65532:\n".encode()),
    }


def _layer(workdir: Path, name: str, entries: Mapping[str, Entry]) -> Path:
    """A layer of ``entries``, by way of a folder like the operator image's layers."""
    shutil.rmtree(workdir / name, ignore_errors=True)
    write_entries(workdir / name, entries)
    return tar_tree(workdir / f"{name}.tar", workdir / name)


def write_entries(root: Path, entries: Mapping[str, Entry]) -> None:
    for name, entry in sorted(entries.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            path.symlink_to(entry.link)
            continue
        path.mkdir() if entry.data is None else path.write_bytes(entry.data)
        path.chmod(entry.mode)


def tar_tree(path: Path, root: Path, *, only: str = "", exclude: str = "") -> Path:
    """A layer of the folders under ``root``; fixed owners and times make it (and its digest)
    the same on every build."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname, info.mtime = 0, 0, "", "", 0
        return info

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for top in sorted(os.listdir(root)):
            if top != exclude and (not only or top == only):
                tar.add(root / top, arcname=top, filter=normalise)
    return path


# ---- crane -----------------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _ensure(crane: Path, ref: str, layers: list[Path], config: ImageConfig, say: Log) -> None:
    digest = hashlib.sha256(repr(config).encode())
    for layer in layers:
        digest.update(layer.read_bytes())
    if not has_content(crane, ref, digest.hexdigest()):
        say(f"{ref}: pushing")
        push(crane, ref, layers, config, digest.hexdigest())


def has_content(crane: Path, ref: str, content: str) -> bool:
    try:
        config = json.loads(crane_output(crane, "config", ref))
    except ImageError:  # missing; an unreachable registry fails the push instead
        return False
    return bool((config.get("config", {}).get("Labels") or {}).get(CONTENT_LABEL) == content)


def push(crane: Path, ref: str, layers: list[Path], config: ImageConfig, content: str) -> None:
    # The config comes with a second push; until then the tag lacks the content label, so an
    # interrupted build is done again.
    crane_output(
        crane, "append", "--oci-empty-base", *(f"--new_layer={p}" for p in layers), "-t", ref
    )
    arguments = ["mutate", ref, "-t", ref, f"--set-platform=linux/{_ARCH}"]
    # crane reads --entrypoint as CSV; the other flags split at the first "=" only.
    arguments += ['--entrypoint="{}"'.format(part.replace('"', '""')) for part in config.entrypoint]
    arguments += [f"--user={config.user}"] if config.user else []
    arguments += [f"--exposed-ports={port}" for port in config.exposed_ports]
    arguments += [f"--env={key}={value}" for key, value in config.env.items()]
    for key, value in {**config.labels, CONTENT_LABEL: content}.items():
        if "=" in key + value or value.startswith('"') or value.endswith('"'):
            raise ImageError(f"crane cannot set the label {key}={value!r}")
        arguments.append(f"--label={key}={value}")
    crane_output(crane, *arguments)


def crane_output(crane: Path, *arguments: str) -> str:
    return run_tool([str(crane), *arguments, "--insecure"], f"crane {arguments[0]}")


def run_tool(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def quiet(_message: str) -> None:
    pass
