"""A very small Kubernetes API client on the standard library.

The local cluster's own plumbing (startup checks, nodes, the PVC provisioner) uses this instead of
the ``kubernetes`` package: it imports in milliseconds and keeps the provisioner process small.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

Obj = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class PlainKubeClient:
    host: str
    port: int
    token: str
    ca_file: Path | None = None
    timeout: float = 10.0

    def _context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self._context(), timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: Obj | list[Obj] | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Obj:
        if query:
            path = f"{path}?{urlencode(query)}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn = self._connect(self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode()
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, resp.reason, raw)
        if not raw:
            return {}
        parsed: Obj = json.loads(raw)
        return parsed

    def get(self, path: str, **query: str) -> Obj:
        return self.request("GET", path, query=query or None)

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        """POST; an existing object (409) is not an error and is returned as ``{}``."""
        try:
            return self.request("POST", path, body)
        except ApiError as exc:
            if exc.status == 409:
                return {}
            raise

    def delete(self, path: str) -> None:
        try:
            self.request("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def raw_get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """Status and body of a GET that may fail (health checks)."""
        conn = self._connect(timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 60) -> Iterator[Obj]:
        """Watch events (dicts with ``type`` and ``object``) until the server ends the watch."""
        query = urlencode(
            {
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(timeout_seconds),
            }
        )
        conn = self._connect(timeout_seconds + 10)
        try:
            conn.request(
                "GET", f"{path}?{query}", headers={"Authorization": f"Bearer {self.token}"}
            )
            resp = conn.getresponse()
            if resp.status >= 300:
                raise ApiError(resp.status, resp.reason, resp.read().decode())
            while line := resp.readline():
                if line.strip():
                    event: Obj = json.loads(line)
                    yield event
        finally:
            conn.close()
