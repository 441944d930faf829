"""OCI images for clusters with real nodes, built and pushed with crane alone (no container engine).

The test images (the pod sandbox ``pause`` and ``app`` tags that behave by name) come from one
static busybox; the operator image mirrors the Dockerfile from the running interpreter and a wheel
of the checkout. Tooling for the local cluster and the tests: the operator never imports it.
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
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import metadata
from pathlib import Path

from scaleset_operator.localcluster.binaries import env_var_for, nodebin_dir, repo_root

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
class _Entry:
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
    say = log or _quiet
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


def _busybox() -> dict[str, _Entry]:
    found = shutil.which("busybox")
    if found is None:
        raise ImageError("busybox is not installed (apt-get install busybox-static)")
    busybox = Path(found).resolve()
    linkage = subprocess.run(["ldd", str(busybox)], capture_output=True, text=True, check=False)
    if "=>" in linkage.stdout:
        raise ImageError(f"{busybox} is not statically linked (apt-get install busybox-static)")
    entries = {"bin/busybox": _Entry(0o755, busybox.read_bytes()), "tmp": _Entry(0o1777)}
    entries |= {f"bin/{applet}": _Entry(0o777, link="busybox") for applet in _APPLETS}
    entries |= {f"bin/{n}": _Entry(0o755, f"#!/bin/sh\n{s}".encode()) for n, s in _SCRIPTS.items()}
    return entries | _accounts("app")


def _www(tag: str, behaviour: Behaviour) -> dict[str, _Entry]:
    status = "503 Service Unavailable" if behaviour is Behaviour.UNREADY else "200 OK"
    ready = f"printf 'Status: {status}\\r\\nContent-Type: text/plain\\r\\n\\r\\n{tag}\\n'\n"
    return {
        "www/version": _Entry(0o644, tag.encode()),
        f"www{READY_PATH}": _Entry(0o755),
        "www/cgi-bin/index.cgi": _Entry(0o755, f"#!/bin/sh\n{ready}".encode()),
    }


def _accounts(user: str) -> dict[str, _Entry]:
    passwd = f"root:x:0:0::/root:/sbin/nologin\n{user}:x:65532:65532::/nonexistent:/sbin/nologin\n"
    return {
        "etc/passwd": _Entry(0o644, passwd.encode()),
        "etc/group": _Entry(0o644, f"root:x:0:\n{user}:x:65532:\n".encode()),
    }


def _layer(workdir: Path, name: str, entries: Mapping[str, _Entry]) -> Path:
    """A layer of ``entries``, by way of a folder like the operator image's layers."""
    shutil.rmtree(workdir / name, ignore_errors=True)
    _write_entries(workdir / name, entries)
    return _tar_tree(workdir / f"{name}.tar", workdir / name)


def _write_entries(root: Path, entries: Mapping[str, _Entry]) -> None:
    for name, entry in sorted(entries.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            path.symlink_to(entry.link)
            continue
        path.mkdir() if entry.data is None else path.write_bytes(entry.data)
        path.chmod(entry.mode)


def _tar_tree(path: Path, root: Path, *, only: str = "", exclude: str = "") -> Path:
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


# ---- the operator image --------------------------------------------------------------------

_PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
_STDLIB = f"usr/local/lib/{_PY}"
_SITE = f"opt/venv/lib/{_PY}/site-packages"
# Test suites, GUI and installer parts of the standard library, and the static libpython used
# only to build extensions: the slim image leaves out most of them too.
_STDLIB_SKIP = {"test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip"}
_STDLIB_SKIP_PREFIXES = ("site-packages", "__pycache__", "config-3", "_test", "_tkinter", "xx")


def build_operator_image(
    crane: Path,
    registry: Registry,
    workdir: Path,
    *,
    tag: str | None = None,
    log: Log | None = None,
) -> str:
    """Pushes the Dockerfile's image, built from this checkout and the interpreter running this;
    returns its reference. The default tag is the version and a hash of what the image holds; a
    registry that already has the image is left alone."""
    say, started = log or _quiet, time.monotonic()
    root = repo_root()
    if root is None:
        raise ImageError("the operator image is built from a source checkout; this is none")
    workdir.mkdir(parents=True, exist_ok=True)
    wheel = _build_wheel(root, workdir / "wheel")
    # Pinned to the versions of the build's environment, which the tests ran against.
    constraints = workdir / "constraints.txt"
    constraints.write_text(
        "".join(
            f"{dist.metadata['Name']}=={dist.version}\n"
            for dist in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"])
            if dist.metadata["Name"] != "scaleset-operator"
        )
    )
    interpreter = [Path(sys.base_prefix, "bin", _PY)]
    interpreter += sorted(Path(sys.base_prefix, "lib").glob(f"lib{_PY}.so*"))
    if not interpreter[0].is_file():
        raise ImageError(f"no {interpreter[0]}: the image reuses the interpreter running the build")
    digest = hashlib.sha256()
    for path in [wheel, constraints, *interpreter, Path(__file__)]:
        digest.update(path.read_bytes())
    content = digest.hexdigest()
    ref = registry.ref(OPERATOR_REPOSITORY, tag or f"{wheel.name.split('-')[1]}-{content[:12]}")
    if _has_content(crane, ref, content):
        say(f"{ref}: already in the registry")
        return ref
    rootfs = workdir / "operator-rootfs"
    _assemble_rootfs(rootfs, interpreter, wheel, constraints, lambda step: say(f"{ref}: {step}"))
    # Two layers, like the base image and the venv of the Dockerfile: a change of the code
    # leaves the interpreter's layer as it was.
    layers = [
        _tar_tree(workdir / "operator-runtime.tar", rootfs, exclude="opt"),
        _tar_tree(workdir / "operator-venv.tar", rootfs, only="opt"),
    ]
    size = sum(layer.stat().st_size for layer in layers)
    say(f"{ref}: pushing {size / 2**20:.0f} MiB")
    _push(crane, ref, layers, replace(OPERATOR_CONFIG, env=image_env(OPERATOR_CONFIG)), content)
    shutil.rmtree(rootfs)  # hundreds of MiB, as are the layers
    for layer in layers:
        layer.unlink()
    compressed = sum(
        layer["size"] for layer in json.loads(_crane(crane, "manifest", ref))["layers"]
    )
    took = time.monotonic() - started
    say(f"{ref}: {compressed / 2**20:.0f} MiB compressed, built in {took:.0f} s")
    return ref


def _build_wheel(root: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(into), str(root)], "pip"
    )
    return next(into.glob("scaleset_operator-*.whl"))


def _assemble_rootfs(
    rootfs: Path, interpreter: list[Path], wheel: Path, constraints: Path, say: Log
) -> None:
    shutil.rmtree(rootfs, ignore_errors=True)
    say(f"copying the interpreter of {sys.base_prefix}")
    _install_interpreter(rootfs, interpreter)
    say(f"installing {wheel.name} and its dependencies")
    _install_venv(rootfs, wheel, constraints)
    say("byte-compiling, since the root filesystem is read-only in the pod")
    # Hash-checked .pyc files never compare the sources' times, which the layers do not keep.
    _run(
        [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
         "-s", str(rootfs), "-p", "/", str(rootfs / _STDLIB), str(rootfs / _SITE)],
        "compileall",
    )  # fmt: skip
    say("copying shared libraries")
    _copy_libraries(rootfs)
    nsswitch = b"passwd: files\ngroup: files\nhosts: files dns\n"
    system = {"etc/nsswitch.conf": _Entry(0o644, nsswitch), "tmp": _Entry(0o1777)}
    _write_entries(rootfs, _accounts("operator") | system)
    _ldconfig(rootfs)


def _install_interpreter(rootfs: Path, interpreter: list[Path]) -> None:
    binary, *libraries = interpreter
    local = rootfs / "usr/local"
    for folder in ("bin", "lib"):
        (local / folder).mkdir(parents=True)
    shutil.copy2(binary, local / "bin" / _PY)
    for alias in ("python3", "python"):
        (local / "bin" / alias).symlink_to(_PY)
    for library in libraries:
        if library.is_symlink():
            (local / "lib" / library.name).symlink_to(os.readlink(library))
        else:
            shutil.copy2(library, local / "lib" / library.name)
    shutil.copytree(
        Path(sys.base_prefix, "lib", _PY),
        rootfs / _STDLIB,
        symlinks=True,
        ignore=lambda _folder, names: {
            n for n in names if n in _STDLIB_SKIP or n.startswith(_STDLIB_SKIP_PREFIXES)
        },
    )


def _install_venv(rootfs: Path, wheel: Path, constraints: Path) -> None:
    """The Dockerfile's /opt/venv, for the interpreter at /usr/local."""
    venv = rootfs / "opt/venv"
    _run(
        [sys.executable, "-m", "pip", "install", "-q", "--prefix", str(venv), "--ignore-installed",
         "--no-compile", "--no-warn-script-location", "--only-binary", ":all:",
         "--constraint", str(constraints), str(wheel)],
        "pip install",
    )  # fmt: skip
    (venv / "pyvenv.cfg").write_text(
        "home = /usr/local/bin\ninclude-system-site-packages = false\n"
        f"version = {platform.python_version()}\n"
    )
    for alias in ("python", "python3", _PY):
        (venv / "bin" / alias).symlink_to(f"/usr/local/bin/{_PY}")
    # pip points scripts at the interpreter running it: on the first line, or for a path over
    # 127 bytes, a /bin/sh line and two lines that `exec` it.
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or script.read_bytes()[:2] != b"#!":
            continue
        lines = script.read_text().splitlines(keepends=True)
        skip = 3 if lines[1:2] and lines[1].startswith("'''exec'") else 1
        if skip == 3 or "python" in lines[0]:
            script.write_text("#!/opt/venv/bin/python\n" + "".join(lines[skip:]))


def _copy_libraries(rootfs: Path) -> None:
    """Each shared library that the interpreter and the extension modules load, with the dynamic
    loader, at the path it has on this machine (those in the image already stay out)."""
    objects = [rootfs / "usr/local/bin" / _PY]
    objects += [p for p in rootfs.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    listing = subprocess.run(["ldd", *map(str, objects)], capture_output=True, text=True).stdout
    needed: set[Path] = set()
    for line in listing.splitlines():
        if "not found" in line:
            raise ImageError(f"a shared library is missing on this machine: {line.strip()}")
        target = line.split("=>")[-1].split()
        if target and target[0].startswith("/") and not line.rstrip().endswith(":"):
            needed.add(Path(target[0]))
    for libc in [path for path in needed if path.name == "libc.so.6"]:
        # glibc loads it when a thread ends in pthread_exit (daemon threads at shutdown).
        if (libc.parent / "libgcc_s.so.1").exists():
            needed.add(libc.parent / "libgcc_s.so.1")
    for path in sorted(needed):
        if not path.is_relative_to(sys.base_prefix) and not path.is_relative_to(rootfs):
            (rootfs / path.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, rootfs / path.relative_to("/"))


def _ldconfig(rootfs: Path) -> None:
    """The loader's cache, through which libpython is found in /usr/local/lib as on
    python:3.11-slim (the interpreter's own run path names a folder of this machine)."""
    (rootfs / "etc/ld.so.conf").write_text("/usr/local/lib\n")
    command = [shutil.which("ldconfig") or "/sbin/ldconfig", "-X", "-r", str(rootfs)]
    if os.geteuid() != 0:  # ldconfig -r chroots
        command = ["unshare", "--user", "--map-root-user", *command]
    _run(command, "ldconfig")


# ---- crane -----------------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _ensure(crane: Path, ref: str, layers: list[Path], config: ImageConfig, say: Log) -> None:
    digest = hashlib.sha256(repr(config).encode())
    for layer in layers:
        digest.update(layer.read_bytes())
    if not _has_content(crane, ref, digest.hexdigest()):
        say(f"{ref}: pushing")
        _push(crane, ref, layers, config, digest.hexdigest())


def _has_content(crane: Path, ref: str, content: str) -> bool:
    try:
        config = json.loads(_crane(crane, "config", ref))
    except ImageError:  # missing; an unreachable registry fails the push instead
        return False
    return bool((config.get("config", {}).get("Labels") or {}).get(CONTENT_LABEL) == content)


def _push(crane: Path, ref: str, layers: list[Path], config: ImageConfig, content: str) -> None:
    # The config comes with a second push; until then the tag lacks the content label, so an
    # interrupted build is done again.
    _crane(crane, "append", "--oci-empty-base", *(f"--new_layer={p}" for p in layers), "-t", ref)
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
    _crane(crane, *arguments)


def _crane(crane: Path, *arguments: str) -> str:
    return _run([str(crane), *arguments, "--insecure"], f"crane {arguments[0]}")


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _quiet(_message: str) -> None:
    pass
