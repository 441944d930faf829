"""A real Prometheus for tests: its own config, storage and loopback port, queried over HTTP.

The binaries come from Debian's `prometheus` package (hack/install-prometheus.sh).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "hack" / "install-prometheus.sh"
JOB = "scaleset-operator"
T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = probe()
    return last


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installing Debian's package when they are missing."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if not all(found):
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, capture_output=True, timeout=600)
        found = shutil.which("prometheus"), shutil.which("promtool")
    prometheus, promtool = found
    if prometheus is None or promtool is None:
        raise RuntimeError(f"prometheus/promtool not on PATH after {INSTALL_SCRIPT}")
    return prometheus, promtool


class QueryError(Exception):
    """Prometheus answered a query with an error (it did not parse or could not run)."""


class PrometheusProcess:
    """One Prometheus server scraping `targets` every second and evaluating `rule_files`."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = list(targets)
        self.rule_files = list(rule_files)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> None:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": self.targets}]},
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        poll(self._ready, timeout, "Prometheus to be ready")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise QueryError(f"{params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; the series (vector) or a single value (scalar) it returns."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.api(f"/api/v1/label/{label}/values", **{"match[]": match})
        return values

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("/api/v1/alerts")["alerts"]
        return alerts

    def last_scrape(self) -> float:
        """Unix time of the latest successful scrape of the job (0 before the first)."""
        # timestamp() of a plain selector is the scrape's start; of anything else, now.
        up = f'up{{job="{JOB}"}}'
        latest = self.value(f"timestamp({up}) and {up} == 1")
        return latest or 0.0

    def scraped_since(self, moment: float, timeout: float = 15.0) -> None:
        """Wait for a successful scrape that started after `moment` (Unix time)."""
        poll(lambda: self.last_scrape() > moment, timeout, f"a scrape after {moment}")
