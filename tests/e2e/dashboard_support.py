"""The dashboard as a child process, and Debian's Chromium driven by Playwright, for the
browser tests and the documentation's screenshots."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tests.e2e.support import REPO, eventually

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out to the network or waits for a first-run dialog.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_URL = re.compile(r"Dashboard: (http://\S+)")


def _ctrl_c_as_in_a_terminal() -> None:
    """A test run started as a background job (no job control) ignores SIGINT, and a child
    inherits that: Ctrl-C would then never reach the dashboard. Started from a terminal, it
    gets SIGINT's default, so that is what the dashboard gets here."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DashboardProcess:
    """`python -m scaleset_operator.dashboard` on a free port, started by `start()`."""

    kubeconfig: Path
    log: Path
    extra: tuple[str, ...] = ()
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self, timeout: float = 20) -> str:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), env.get("PYTHONPATH", "")])
        self._out = self.log.open("wb")
        command = [sys.executable, "-m", "scaleset_operator.dashboard", "--port", "0"]
        self.proc = subprocess.Popen(
            [*command, "--kubeconfig", str(self.kubeconfig), *self.extra],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )

        def printed() -> str | None:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()
            found = _URL.search(self.log.read_text())
            return found.group(1) if found else None

        self.url = eventually(printed, timeout, interval=0.1, what="the dashboard's URL")
        return self.url

    @property
    def token(self) -> str:
        return self.url.split("#token=", 1)[1]

    @property
    def authority(self) -> str:
        return urlsplit(self.url).netloc

    def page_url(self, namespace: str, name: str = "web") -> str:
        return f"{self.url}&scaleset={namespace}/{name}"

    def stop(self) -> int | None:
        """Ctrl-C, as a user stops it; the exit code (0: it shut down cleanly)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._out is not None:
            self._out.close()
            self._out = None
        return self.proc.returncode if self.proc is not None else None

    def http(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, str]:
        """One raw request, every header as given (Host included): what another page or a
        DNS-rebinding attacker could send."""
        host, port = self.authority.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's; Playwright's own downloads are never used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
