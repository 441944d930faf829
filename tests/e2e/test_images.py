"""Images built and pushed with crane alone, into a throwaway registry on 127.0.0.1 (no cluster).

What a kubelet will rely on is checked by running the images' own files: the probe path's
status by image, PID 1 leaving at once on SIGTERM, the operator starting in its own root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleset_operator.localcluster.images import (
    OPERATOR_CONFIG,
    READY_PATH,
    Registry,
    build_test_images,
    dockerfile_config,
    find_crane,
    image_env,
)
from scaleset_operator.localcluster.operatorimage import build_operator_image
from tests.e2e.support import REPO, free_port
from tests.helpers import wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and PID namespaces need root")


@pytest.fixture(scope="module")
def crane() -> Path:
    return find_crane()


@pytest.fixture(scope="module")
def registry(crane: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("registry")
    (folder / "data").mkdir()  # crane's --disk does not create its folder: pushes fail with 500
    address = f"127.0.0.1:{free_port()}"
    with (folder / "registry.log").open("wb") as log:
        server = subprocess.Popen(
            [str(crane), "registry", "serve", "--address", address, "--disk", str(folder / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: _status(f"http://{address}/v2/") == 200,
                timeout=10,
                message=f"the registry on {address}",
                ignore=(OSError,),
            )
            yield Registry(address)
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def app_images(
    crane: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return build_test_images(crane, registry, tmp_path_factory.mktemp("test-images"))


@pytest.fixture(scope="module")
def operator_image(
    crane: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return build_operator_image(crane, registry, tmp_path_factory.mktemp("operator-image"))


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return bytes(response.read()).decode()


def _config(crane: Path, ref: str) -> dict[str, Any]:
    found = subprocess.run(
        [str(crane), "config", "--insecure", ref], capture_output=True, text=True, check=True
    )
    config: dict[str, Any] = json.loads(found.stdout)
    return config


def _rootfs(crane: Path, ref: str, into: Path) -> Path:
    """The image's flattened file system, as a container would see it."""
    tarball = into.with_suffix(".tar")
    subprocess.run([str(crane), "export", "--insecure", ref, str(tarball)], check=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="tar")
    return into


def test_bad_tags_are_never_pushed(
    crane: Path, registry: Registry, app_images: dict[str, str]
) -> None:
    listed = subprocess.run(
        [str(crane), "ls", "--insecure", f"{registry.address}/app"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert set(listed.stdout.split()) == {"v1", "v2", "v3", "unready-1", "crash-1"}
    assert app_images["app:bad-1"] == registry.ref("app", "bad-1")
    assert app_images["pause:local"] == registry.ref("pause", "local")


def test_test_images_are_not_pushed_again(
    crane: Path, registry: Registry, app_images: dict[str, str], tmp_path: Path
) -> None:
    said: list[str] = []

    again = build_test_images(crane, registry, tmp_path, log=said.append)

    assert again == app_images
    assert said == []


@pytest.mark.parametrize(
    ("name", "ready"), [("app:v1", 200), ("app:v2", 200), ("app:unready-1", 503)]
)
def test_probe_path_answers_by_image(
    crane: Path, app_images: dict[str, str], tmp_path: Path, name: str, ready: int
) -> None:
    # The image's /www served by the host's busybox on 127.0.0.1: the same httpd as in the image.
    root = _rootfs(crane, app_images[name], tmp_path / "root")
    base = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(["busybox", "httpd", "-f", "-p", base[7:], "-h", str(root / "www")])
    try:
        wait_for(lambda: _status(f"{base}/version") == 200, timeout=5, ignore=(OSError,))

        assert _status(base + READY_PATH) == ready
        assert _get(f"{base}/version") == name.split(":")[1]
    finally:
        server.terminate()
        server.wait(timeout=5)


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _host_tool(name: str) -> str:
    # Looked up here: the commands below run with the image's environment, PATH included.
    found = shutil.which(name)
    assert found, f"{name} is not installed"
    return found


@contextlib.contextmanager
def _running_as_pid_1(
    crane: Path, ref: str, into: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The image's entrypoint as PID 1 of new PID and network namespaces, as runc runs it."""
    root = _rootfs(crane, ref, into)
    config = _config(crane, ref)["config"]
    (root / "dev").mkdir(exist_ok=True)
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # as runc provides
    outer = subprocess.Popen(
        [_host_tool("unshare"), "--pid", "--net", "--fork", "--kill-child", _host_tool("chroot"),
         f"--userspec={config['User']}", str(root), *config["Entrypoint"]],
        env=dict(entry.split("=", 1) for entry in config["Env"]),
    )  # fmt: skip
    try:
        (pid_1,) = wait_for(lambda: _children(outer.pid), timeout=5, message="the forked PID 1")
        time.sleep(0.5)  # time for the shell to set its trap
        yield outer, pid_1
    finally:
        if outer.poll() is None:
            outer.kill()
        outer.wait()


@needs_root
@pytest.mark.parametrize("name", ["pause:local", "app:v1"])
def test_pid_1_stops_at_once_on_sigterm(
    crane: Path, app_images: dict[str, str], tmp_path: Path, name: str
) -> None:
    with _running_as_pid_1(crane, app_images[name], tmp_path / "root") as (outer, pid_1):
        assert outer.poll() is None, "the entrypoint ended before it was asked to"

        started = time.monotonic()
        os.kill(pid_1, signal.SIGTERM)

        assert outer.wait(timeout=5) == 0
        assert time.monotonic() - started < 1.0


@needs_root
def test_crash_image_exits_1_after_a_second(
    crane: Path, app_images: dict[str, str], tmp_path: Path
) -> None:
    with _running_as_pid_1(crane, app_images["app:crash-1"], tmp_path / "root") as (outer, _):
        assert outer.wait(timeout=5) == 1


def test_operator_image_config_is_the_dockerfiles(crane: Path, operator_image: str) -> None:
    image = _config(crane, operator_image)
    config = image["config"]
    declared = dockerfile_config(REPO / "Dockerfile")

    assert (image["os"], image["architecture"]) == ("linux", "amd64")
    assert config["Entrypoint"] == list(declared.entrypoint)
    assert config["User"] == declared.user
    assert set(config["ExposedPorts"]) == set(declared.exposed_ports)
    assert dict(entry.split("=", 1) for entry in config["Env"]) == image_env(declared)
    assert declared.labels.items() <= config["Labels"].items()
    assert declared == OPERATOR_CONFIG


def test_operator_image_is_not_built_again(
    crane: Path, registry: Registry, operator_image: str, tmp_path: Path
) -> None:
    said: list[str] = []

    again = build_operator_image(crane, registry, tmp_path, log=said.append)

    assert again == operator_image
    assert said == [f"{operator_image}: already in the registry"]


@needs_root
def test_operator_starts_without_the_hosts_files(
    crane: Path, operator_image: str, tmp_path: Path
) -> None:
    root = _rootfs(crane, operator_image, tmp_path / "root")
    config = _config(crane, operator_image)["config"]
    env = dict(entry.split("=", 1) for entry in config["Env"])

    for arguments, expected in [
        (config["Entrypoint"], "Run the operator"),
        (config["Entrypoint"][:1], "Commands:"),
    ]:
        shown = subprocess.run(
            [_host_tool("chroot"), f"--userspec={config['User']}", str(root), *arguments, "--help"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert expected in shown.stdout
