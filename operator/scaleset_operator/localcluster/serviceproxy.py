"""The ``kubernetes`` Service for pods on real nodes, without kube-proxy (run as its own process).

Pods reach the API server through the in-cluster config: ``KUBERNETES_SERVICE_HOST`` and
``_PORT``, which the kubelet fills in from the ``kubernetes`` Service's cluster IP (10.96.0.1:443).
Without kube-proxy nothing answers there, and the API server listens on 127.0.0.1 only, which a
pod's network namespace cannot reach. The local cluster therefore puts the cluster IP on a bridge
of its own (a host address, reachable from every pod bridge without IP forwarding) and this
process relays each TCP connection made to it to the API server. TLS passes through untouched: the
serving certificate already names 10.96.0.1 and ``kubernetes.default.svc``.

    python -m scaleset_operator.localcluster.serviceproxy --listen 10.96.0.1:443 \\
        --to 127.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _relay(
    target: tuple[str, int], client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
) -> None:
    try:
        upstream_r, upstream_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
    finally:
        for w in (client_w, upstream_w):
            w.close()


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    server = await asyncio.start_server(
        lambda r, w: _relay(target, r, w), listen[0], listen[1], reuse_address=True
    )
    print(f"relaying {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_split, required=True, help="HOST:PORT to accept on")
    parser.add_argument("--to", type=_split, required=True, help="HOST:PORT to relay to")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.listen, args.to))
    except OSError as exc:
        print(f"error: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
