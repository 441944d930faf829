"""The operator's image, built like the Dockerfile builds it but without a container engine: the
interpreter running this, a wheel of the checkout and its dependencies, pushed with crane."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from scaleset_operator.localcluster import images
from scaleset_operator.localcluster.binaries import repo_root
from scaleset_operator.localcluster.images import (
    OPERATOR_CONFIG,
    OPERATOR_REPOSITORY,
    Entry,
    ImageError,
    Log,
    Registry,
    accounts,
    crane_output,
    has_content,
    image_env,
    push,
    quiet,
    run_tool,
    tar_tree,
    write_entries,
)

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
    say, started = log or quiet, time.monotonic()
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
    for path in [wheel, constraints, *interpreter, Path(__file__), Path(images.__file__)]:
        digest.update(path.read_bytes())
    content = digest.hexdigest()
    ref = registry.ref(OPERATOR_REPOSITORY, tag or f"{wheel.name.split('-')[1]}-{content[:12]}")
    if has_content(crane, ref, content):
        say(f"{ref}: already in the registry")
        return ref
    rootfs = workdir / "operator-rootfs"
    _assemble_rootfs(rootfs, interpreter, wheel, constraints, lambda step: say(f"{ref}: {step}"))
    # Two layers, like the base image and the venv of the Dockerfile: a change of the code
    # leaves the interpreter's layer as it was.
    layers = [
        tar_tree(workdir / "operator-runtime.tar", rootfs, exclude="opt"),
        tar_tree(workdir / "operator-venv.tar", rootfs, only="opt"),
    ]
    size = sum(layer.stat().st_size for layer in layers)
    say(f"{ref}: pushing {size / 2**20:.0f} MiB")
    push(crane, ref, layers, replace(OPERATOR_CONFIG, env=image_env(OPERATOR_CONFIG)), content)
    shutil.rmtree(rootfs)  # hundreds of MiB, as are the layers
    for layer in layers:
        layer.unlink()
    compressed = sum(
        layer["size"] for layer in json.loads(crane_output(crane, "manifest", ref))["layers"]
    )
    took = time.monotonic() - started
    say(f"{ref}: {compressed / 2**20:.0f} MiB compressed, built in {took:.0f} s")
    return ref


def _build_wheel(root: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    run_tool(
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
    run_tool(
        [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
         "-s", str(rootfs), "-p", "/", str(rootfs / _STDLIB), str(rootfs / _SITE)],
        "compileall",
    )  # fmt: skip
    say("copying shared libraries")
    _copy_libraries(rootfs)
    nsswitch = b"passwd: files\ngroup: files\nhosts: files dns\n"
    system = {"etc/nsswitch.conf": Entry(0o644, nsswitch), "tmp": Entry(0o1777)}
    write_entries(rootfs, accounts("operator") | system)
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
    run_tool(
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
    run_tool(command, "ldconfig")
