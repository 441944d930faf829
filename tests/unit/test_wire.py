"""`k8s.wire` against a scripted HTTP server on loopback: bodies sized by Content-Length or
chunked, a watch's lines across chunk borders, kept-alive connections reused and replaced when
the server closed them, and every failure classified as `KubeClient` callers expect."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import NotFoundError, UnavailableError
from scaleset_operator.k8s.wire import Wire, WireError, _nothing_came

# One scripted answer: gets the request's head and body, returns raw bytes to send, or None
# to close the connection without answering.
Script = Callable[[bytes, bytes], bytes | None]


def _read_request(conn: socket.socket, pending: bytes) -> tuple[bytes, bytes, bytes] | None:
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head, rest[:length], rest[length:]


class Server:
    """Answers each request with the next script; records every request and connection."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.hung_up = threading.Event()  # a client closed a connection
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        with conn:
            while True:
                got = _read_request(conn, pending)
                if got is None:
                    self.hung_up.set()
                    return
                head, body, pending = got
                with self.lock:
                    self.requests.append((head, body))
                    script = self.scripts.pop(0) if self.scripts else hang_up
                answer = script(head, body)
                if answer is None:
                    return
                conn.sendall(answer)
                if b"Connection: close" in answer.partition(b"\r\n\r\n")[0]:
                    return

    def close(self) -> None:
        self.sock.close()


Serve = Callable[..., tuple[Server, Wire]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[Server] = []
    wires: list[Wire] = []

    def start(*scripts: Script) -> tuple[Server, Wire]:
        server = Server(*scripts)
        cfg = client.Configuration(host=f"http://127.0.0.1:{server.port}")
        cfg.api_key = {"authorization": "Bearer sesame"}
        wire = Wire(cfg, "scaleset-operator-test", pool_size=4)
        servers.append(server)
        wires.append(wire)
        return server, wire

    yield start
    for wire in wires:
        wire.close()
    for server in servers:
        server.close()


def sized(body: bytes, status: str = "200 OK", extra: bytes = b"") -> Script:
    answer = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )
    return lambda head, sent: answer


def chunked(*pieces: bytes) -> Script:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    return lambda head, sent: answer


def closing(body: bytes, *, length: int | None = None) -> Script:
    """An answer after which the server closes the connection, as it says it will."""
    sized_as = b"" if length is None else b"Content-Length: %d\r\n" % length
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n%s\r\n%s" % (sized_as, body)
    return lambda head, sent: answer


def hang_up(head: bytes, sent: bytes) -> None:
    return None


def test_a_sized_answer_is_read_and_its_connection_kept_for_the_next_request(serve: Serve) -> None:
    server, wire = serve(sized(b'{"a":1}'), sized(b'{"b":2}'))
    first = wire.open("PATCH", "/api/v1/x", [("q", "a b")], b'[{"op":"x"}]', "text/x", 5)
    assert (first.status, first.read()) == (200, b'{"a":1}')
    assert wire.open("GET", "/y", [], None, "", 5).read() == b'{"b":2}'
    assert server.connections == 1
    head, body = server.requests[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"PATCH /api/v1/x?q=a+b HTTP/1.1"
    assert b"authorization: bearer sesame" in [line.lower() for line in lines]
    assert b"Content-Type: text/x" in lines
    assert body == b'[{"op":"x"}]'
    assert not any(
        line.startswith(b"Content-Length") for line in server.requests[1][0].split(b"\r\n")
    )


def test_a_chunked_answer_is_whole_and_its_lines_cross_chunk_borders(serve: Serve) -> None:
    _, wire = serve(chunked(b'{"a":', b"1}\n"), chunked(b'{"e":1}\n{"e":2}\n{"e"', b":3}\n", b"\n"))
    assert wire.open("GET", "/a", [], None, "", 5).read() == b'{"a":1}\n'
    lines = list(wire.open("GET", "/w", [], None, "", 5).lines())
    assert [line for line in lines if line] == [b'{"e":1}', b'{"e":2}', b'{"e":3}']


def test_an_answer_without_a_length_is_read_to_the_close_and_not_kept(serve: Serve) -> None:
    server, wire = serve(closing(b'{"whole":true}'), sized(b"{}"))
    assert wire.open("GET", "/a", [], None, "", 5).read() == b'{"whole":true}'
    assert wire.open("GET", "/b", [], None, "", 5).read() == b"{}"
    assert server.connections == 2


def test_a_sized_stream_yields_its_lines_and_a_bodiless_answer_reads_empty(serve: Serve) -> None:
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    server, wire = serve(sized(b'{"e":1}\n{"e":2}'), lambda head, sent: no_content, sized(b"{}"))
    assert list(wire.open("GET", "/w", [], None, "", 5).lines()) == [b'{"e":1}', b'{"e":2}']
    assert wire.open("DELETE", "/x", [], None, "", 5).read() == b""
    assert wire.open("GET", "/y", [], None, "", 5).read() == b"{}"
    # The stream's connection is closed after it; the 204's is kept for the next request.
    assert server.connections == 2


def test_closing_a_stream_midway_closes_its_connection(serve: Serve) -> None:
    opened = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{"e":1}\n\r\n'
    server, wire = serve(lambda head, sent: opened)
    reply = wire.open("GET", "/w", [("watch", "1")], None, "", 5)
    lines = reply.lines()
    assert next(lines) == b'{"e":1}'
    reply.close()
    assert server.hung_up.wait(5)


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error(serve: Serve) -> None:
    def answer_then_close(head: bytes, sent: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    server, wire = serve(answer_then_close, hang_up, sized(b'{"again":1}'))
    assert wire.open("GET", "/a", [], None, "", 5).read() == b"{}"
    assert wire.open("GET", "/b", [], None, "", 5).read() == b'{"again":1}'
    assert server.connections == 2
    assert [h.split(b"\r\n")[0] for h, _ in server.requests] == [
        b"GET /a HTTP/1.1",
        b"GET /b HTTP/1.1",
        b"GET /b HTTP/1.1",
    ]


def test_a_new_connection_closed_without_an_answer_is_an_error_not_a_retry(serve: Serve) -> None:
    server, wire = serve(hang_up)
    with pytest.raises(WireError, match="without answering"):
        wire.open("POST", "/a", [], b"{}", "application/json", 5)
    assert len(server.requests) == 1


def test_only_a_hang_up_before_any_answer_lets_a_request_go_again() -> None:
    for hang_up_seen in (
        BrokenPipeError(),
        ConnectionResetError(),
        ssl.SSLEOFError(),
        ssl.SSLZeroReturnError(),
        WireError("the server closed the connection without answering"),
    ):
        assert _nothing_came(hang_up_seen)
    for other in (TimeoutError(), ssl.SSLError(), WireError("2 of 50 bytes"), OSError()):
        assert not _nothing_came(other)


def test_an_answer_cut_short_is_an_error(serve: Serve) -> None:
    _, wire = serve(closing(b"{}", length=50))
    reply = wire.open("GET", "/a", [], None, "", 5)
    with pytest.raises(WireError, match="2 of 50 bytes"):
        reply.read()


def _classified(wire_server: Server) -> KubeClient:
    cfg = client.Configuration(host=f"http://127.0.0.1:{wire_server.port}")
    return KubeClient(client.ApiClient(cfg))


def test_error_statuses_and_broken_connections_are_classified_as_before() -> None:
    not_found = b'{"kind":"Status","message":"pods \\"p\\" not found","reason":"NotFound"}'
    server = Server(sized(not_found, "404 Not Found"), hang_up)
    kube = _classified(server)
    try:
        with pytest.raises(NotFoundError) as found:
            kube.request("GET", "/api/v1/namespaces/n/pods/p")
        assert found.value.status == 404
        assert 'pods "p" not found' in str(found.value)
        with pytest.raises(UnavailableError) as broken:
            kube.request("GET", "/api/v1/namespaces/n/pods/q")
        assert broken.value.status == 0
    finally:
        server.close()
