"""hack/install-browser.sh: nothing to do when Chromium is there, a clear error when it cannot
install it (no apt-get, not root). The install itself is left to `make setup`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "install-browser.sh"


def _run(env: dict[str, str], *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, "/bin/bash", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_an_installed_browser_is_left_alone(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\necho Chromium 1.2.3\n")
    browser.chmod(0o755)
    done = _run({"PATH": os.environ["PATH"], "CHROMIUM": str(browser)})
    assert done.returncode == 0
    assert "already installed: Chromium 1.2.3" in done.stderr


def test_without_apt_get_it_says_so(tmp_path: Path) -> None:
    done = _run({"PATH": str(tmp_path), "CHROMIUM": str(tmp_path / "none")})
    assert done.returncode == 1
    assert "apt-get not found" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_without_root_it_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\nexit 99\n")
    (fake / "apt-get").chmod(0o755)
    tmp_path.chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "CHROMIUM": str(tmp_path / "none")}
    done = _run(env, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    assert done.returncode == 1
    assert "needs root" in done.stderr
