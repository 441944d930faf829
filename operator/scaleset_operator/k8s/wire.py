"""HTTP/1.1 to the API server on the standard library's sockets, kept alive between requests.

An upgrade costs one PATCH and about three watch events per instance. Through the
``kubernetes`` client (urllib3 under it) a PATCH cost 1.0 ms of CPU and a watch event 240 µs;
on a socket of our own 0.6 ms and 120 µs, most of it the TLS and the system calls. Only the
framing we need is here: a request, an answer sized by Content-Length or chunked, or read to
its end, and the watch's stream of lines.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, cast
from urllib.parse import urlencode, urlsplit

from kubernetes.client.exceptions import ApiException

# Go's http.Server closes a connection idle for longer than the API server's IdleTimeout
# (90 s); a connection idle this long is closed by us first rather than found dead.
_IDLE_SECONDS = 45.0
# How long the authorization header is reused before it is asked for again, so that a token
# the client refreshes (in-cluster, exec plugins) is picked up within this time.
_AUTH_SECONDS = 5.0
_MAX_LINE = 65536

Timeout = float | tuple[float, float]


class WireError(ConnectionError):
    """The connection broke or the server's answer is not HTTP we understand."""


def usable(cfg: Any) -> bool:
    """Whether the API server is reached directly (no proxy in between): our socket then
    does; behind a proxy the ``kubernetes`` client's own transport does."""
    scheme = urlsplit(cfg.host).scheme
    return not getattr(cfg, "proxy", None) and scheme in ("http", "https")


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = cast(BinaryIO, sock.makefile("rb", buffering=65536))
        self.idle_since = time.monotonic()
        self.reused = False

    def close(self) -> None:
        # Shut down first: a thread blocked reading this socket returns at once, and only then
        # lets go of the reader that closing it needs.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        for closing in (self.file.close, self.sock.close):
            with contextlib.suppress(OSError):
                closing()


class Reply:
    """The status and headers of an answer; its body is read by `read` or `lines`."""

    def __init__(
        self, wire: Wire, conn: _Connection, status: int, reason: str, headers: dict[str, str]
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._wire = wire
        self._conn: _Connection | None = conn
        self._streaming: _Connection | None = None
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        if status in (204, 304) or status < 200:
            self._chunked, self._length = False, 0  # answers that never carry a body
        self._keep = headers.get("connection", "").lower() != "close" and (
            self._chunked or self._length is not None
        )

    def read(self) -> bytes:
        """The whole body; the connection goes back to the pool once it is read."""
        conn = self._take()
        try:
            if self._chunked:
                data = b"".join(_chunks(conn.file))
            elif self._length is not None:
                data = _exactly(conn.file, self._length)
            else:
                data = conn.file.read()
        except BaseException:
            conn.close()
            raise
        if self._keep:
            self._wire.give_back(conn)
        else:
            conn.close()
        return data

    def lines(self) -> Iterator[bytes]:
        """The body's lines as they arrive (a watch's events); the connection is closed at
        the end, as a stream is not worth keeping; `close` ends it early."""
        conn = self._take()
        self._streaming = conn
        try:
            pending = b""
            if self._chunked:
                pieces: Iterator[bytes] = _chunks(conn.file)
            elif self._length is not None:
                pieces = iter((_exactly(conn.file, self._length),))
            else:
                pieces = iter(conn.file.readline, b"")
            for piece in pieces:
                pending += piece
                if b"\n" not in piece:
                    continue
                *complete, pending = pending.split(b"\n")
                yield from complete
            if pending:
                yield pending
        finally:
            conn.close()

    def close(self) -> None:
        for conn in (self._conn, self._streaming):
            if conn is not None:
                conn.close()
        self._conn = self._streaming = None

    def _take(self) -> _Connection:
        if self._conn is None:
            raise WireError("the answer was read already")
        conn, self._conn = self._conn, None
        return conn


class Wire:
    """Requests to one API server over a pool of kept-alive connections; thread-safe (each
    request holds a connection of its own while it runs)."""

    def __init__(self, cfg: Any, user_agent: str, *, pool_size: int) -> None:
        parts = urlsplit(cfg.host)
        self._cfg = cfg
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc.encode()
        self._agent = user_agent.encode()
        self._tls = _tls_context(cfg) if self._https else None
        self._server_name = getattr(cfg, "tls_server_name", None) or self._hostname
        self._pool_size = pool_size
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        # Kept-alive connections are closed with the client that held them, not left to the
        # garbage collector's warnings.
        weakref.finalize(self, _close_all, self._idle, self._lock)
        self._auth: list[tuple[bytes, bytes]] = []
        self._auth_at = float("-inf")

    def open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: bytes | None,
        content_type: str,
        timeout: Timeout,
    ) -> Reply:
        """Sends one request and reads its status and headers. A kept-alive connection that
        the server had closed meanwhile is replaced once, when nothing came back on it."""
        target = self._prefix + path + ("?" + urlencode(query) if query else "")
        head = self._head(method, target, body, content_type)
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        while True:
            conn = self._take(connect)
            try:
                conn.sock.settimeout(read)
                conn.sock.sendall(head + body if body else head)
                return self._reply(conn)
            except (OSError, WireError) as exc:
                conn.close()
                if not (conn.reused and _nothing_came(exc)):
                    raise

    def give_back(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        conn.reused = True
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        _close_all(self._idle, self._lock)

    def _take(self, connect_timeout: float) -> _Connection:
        now = time.monotonic()
        stale: list[_Connection] = []
        found: _Connection | None = None
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if now - conn.idle_since < _IDLE_SECONDS:
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        return found if found is not None else self._connect(connect_timeout)

    def _connect(self, timeout: float) -> _Connection:
        sock = socket.create_connection((self._hostname, self._port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _head(self, method: str, target: str, body: bytes | None, content_type: str) -> bytes:
        lines = [
            f"{method} {target} HTTP/1.1".encode(),
            b"Host: " + self._host_header,
            b"User-Agent: " + self._agent,
            b"Accept: application/json",
        ]
        lines += [name + b": " + value for name, value in self._authorization()]
        if body is not None:
            lines.append(b"Content-Type: " + content_type.encode())
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _authorization(self) -> list[tuple[bytes, bytes]]:
        now = time.monotonic()
        if now - self._auth_at >= _AUTH_SECONDS:
            settings: dict[str, Any] = self._cfg.auth_settings()
            self._auth = [
                (str(s["key"]).encode(), str(s["value"]).encode())
                for s in settings.values()
                if s.get("in") == "header" and s.get("value")
            ]
            self._auth_at = now
        return self._auth

    def _reply(self, conn: _Connection) -> Reply:
        status_line = conn.file.readline(_MAX_LINE)
        if not status_line:
            raise WireError("the server closed the connection without answering")
        version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise WireError(f"not an HTTP answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = conn.file.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise WireError("the connection closed inside the answer's headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return Reply(self, conn, int(code), reason, headers)


def _close_all(idle: list[_Connection], lock: threading.Lock) -> None:
    with lock:
        closing = idle[:]
        idle.clear()
    for conn in closing:
        conn.close()


def raise_for_status(reply: Reply) -> None:
    """An error status becomes the ``kubernetes`` client's exception, which
    `errors.classify` sorts, so both transports fail alike."""
    if reply.status < 400:
        return
    body = reply.read()
    exc = ApiException(status=reply.status, reason=reply.reason)
    exc.body = body.decode("utf-8", "replace")
    exc.headers = reply.headers
    raise exc


def _nothing_came(exc: BaseException) -> bool:
    """A kept-alive connection the server had closed: the write or the first read failed
    before any answer, so the request can be sent again on a new connection."""
    if isinstance(exc, WireError):
        return "without answering" in str(exc)
    # A TLS peer gone without saying so: the same hang-up, seen through the TLS layer.
    return isinstance(
        exc,
        (
            BrokenPipeError,
            ConnectionResetError,
            ConnectionAbortedError,
            ssl.SSLEOFError,
            ssl.SSLZeroReturnError,
        ),
    )


def _tls_context(cfg: Any) -> ssl.SSLContext:
    if cfg.verify_ssl:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if getattr(cfg, "assert_hostname", None) is False:
            ctx.check_hostname = False
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    return ctx


def _exactly(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise WireError(f"the connection closed after {len(data)} of {size} bytes")
    return data


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    """The pieces of a chunked body, as they arrive."""
    while True:
        size_line = file.readline(_MAX_LINE)
        if not size_line:
            raise WireError("the connection closed inside a chunked answer")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise WireError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while file.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers, which the API server does not send
            return
        yield _exactly(file, size)
        if file.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
            raise WireError("a chunk did not end where its size said")
