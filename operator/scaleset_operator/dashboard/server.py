"""The dashboard's HTTP server (aiohttp): the static page, JSON reads, the event stream, the
actions and the Prometheus proxy, every request passing `security.Guard` first.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from scaleset_operator.dashboard.actions import ActionFailedError, prepare, submit
from scaleset_operator.dashboard.documents import parse
from scaleset_operator.dashboard.prometheus import (
    PANEL_BY_KEY,
    PANELS,
    PrometheusError,
    range_query,
)
from scaleset_operator.dashboard.security import Guard
from scaleset_operator.dashboard.store import CATALOG, PODS, SCALESETS, Store
from scaleset_operator.dashboard.watches import Source, start_reflectors
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.userapi import UserApi
from scaleset_operator.models.imageversion import PLURAL as IMAGEVERSIONS
from scaleset_operator.models.instance import LABEL_SCALESET
from scaleset_operator.models.scaleset import GROUP, PLURAL, VERSION

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEEPALIVE_SECONDS = 15.0
# Status writes come at most once a second per scale set, pod events in bursts: one document
# per tenth of a second keeps the page live without redrawing it for every pod event.
COALESCE_SECONDS = 0.1
GRAPH_POINTS = 240
STATIC = {
    "index.html": "text/html",
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "charts.js": "text/javascript",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_file(name: str) -> bytes:
    return resources.files("scaleset_operator.dashboard").joinpath("static", name).read_bytes()


@dataclass
class Settings:
    """What one dashboard run serves: where, for which namespace, with which Prometheus."""

    guard: Guard
    namespace: str | None = None
    prometheus: str | None = None


def _refused(reason: str) -> web.Response:
    return web.json_response({"error": f"refused: {reason}"}, status=403)


@web.middleware
async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard: Guard = request.app["settings"].guard
    if request.path.startswith("/api/"):
        if request.method == "GET":
            stream = request.path == "/api/stream"
            why = guard.refuse_read(request.headers, request.query, stream=stream)
        else:
            why = guard.refuse_action(request.headers)
    else:
        why = guard.refuse_host(request.headers)
    if why is not None:
        return _refused(why)
    response = await handler(request)
    response.headers.update(_HEADERS)
    return response


async def _page(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    kind = STATIC.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(body=static_file(name), content_type=kind, charset="utf-8")


async def _config(request: web.Request) -> web.Response:
    settings: Settings = request.app["settings"]
    panels = [{"key": p.key, "title": p.title} for p in PANELS] if settings.prometheus else []
    return web.json_response({"namespace": settings.namespace, "panels": panels})


async def _overview(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    return web.json_response(store.overview())


async def _detail(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    key = f"{request.match_info['namespace']}/{request.match_info['name']}"
    doc = await store.detail(key)
    if doc is None:
        return web.json_response({"error": f"scale set {key} not found"}, status=404)
    return web.json_response(doc)


def _sse(name: str, doc: Obj) -> bytes:
    return f"event: {name}\ndata: {json.dumps(doc, sort_keys=True)}\n\n".encode()


async def _stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `overview` and, for `?scaleset=ns/name`, `detail`, each sent
    again whenever it changes."""
    store: Store = request.app["store"]
    key = request.query.get("scaleset") or None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", **_HEADERS, "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    changed = store.subscribe()
    sent: dict[str, str] = {}
    try:
        while True:
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            changed.clear()
            docs: dict[str, Obj | None] = {"overview": store.overview()}
            if key:
                docs["detail"] = await store.detail(key) or {"missing": key}
            for name, doc in docs.items():
                text = json.dumps(doc, sort_keys=True)
                if sent.get(name) != text:
                    sent[name] = text
                    await response.write(_sse(name, doc or {}))
            await asyncio.sleep(COALESCE_SECONDS)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    finally:
        store.unsubscribe(changed)
    return response


async def _action(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    action = request.match_info["action"]
    obj = store.scalesets.get(f"{namespace}/{name}")
    if obj is None:
        return web.json_response({"error": f"scale set {namespace}/{name} not found"}, status=404)
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    versions = [str(v) for v in (body.get("versions") or [])] if isinstance(body, dict) else []
    try:
        written = prepare(action, versions, parse(obj).status, datetime.now(UTC))
        api = UserApi(request.app["cluster"], namespace)
        await asyncio.to_thread(submit, api, name, written)
    except ActionFailedError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    return web.json_response(
        {
            "request": written.request.id,
            "annotation": written.annotation,
            "message": f"{action} requested for {namespace}/{name}",
        }
    )


async def _graph(request: web.Request) -> web.Response:
    settings: Settings = request.app["settings"]
    panel = PANEL_BY_KEY.get(request.match_info["panel"])
    if settings.prometheus is None or panel is None:
        return web.json_response({"error": "no such graph"}, status=404)
    try:
        seconds = min(max(float(request.query.get("seconds", "900")), 30.0), 86400.0)
    except ValueError:
        seconds = 900.0
    end = time.time()
    start = end - seconds
    step = max(1.0, round(seconds / GRAPH_POINTS))
    session: aiohttp.ClientSession = request.app["http"]
    try:
        doc = await range_query(
            session,
            settings.prometheus,
            panel,
            request.match_info["namespace"],
            request.match_info["name"],
            (start, end, step),
        )
    except PrometheusError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    doc.update({"start": start, "end": end})
    return web.json_response(doc)


def sources(namespace: str | None) -> list[Source]:
    where = f"/namespaces/{namespace}" if namespace else ""
    return [
        Source(SCALESETS, f"/apis/{GROUP}/{VERSION}{where}/{PLURAL}"),
        Source(PODS, f"/api/v1{where}/pods", selector=LABEL_SCALESET),
        Source(CATALOG, f"/apis/{GROUP}/{VERSION}/{IMAGEVERSIONS}"),
    ]


async def _lifecycle(app: web.Application) -> Any:
    settings: Settings = app["settings"]
    kube: KubeClient = app["cluster"]
    stop = threading.Event()
    store = Store(asyncio.get_running_loop(), kube)
    app["store"] = store
    app["http"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    start_reflectors(kube, sources(settings.namespace), store, stop)
    yield
    stop.set()
    await app["http"].close()


def make_app(kube: KubeClient, settings: Settings) -> web.Application:
    app = web.Application(middlewares=[_guarded])
    app["settings"] = settings
    app["cluster"] = kube
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/", _page)
    app.router.add_get("/static/{name}", _page)
    app.router.add_get("/api/config", _config)
    app.router.add_get("/api/scalesets", _overview)
    app.router.add_get("/api/scalesets/{namespace}/{name}", _detail)
    app.router.add_get("/api/stream", _stream)
    app.router.add_post("/api/scalesets/{namespace}/{name}/actions/{action}", _action)
    app.router.add_get("/api/scalesets/{namespace}/{name}/graphs/{panel}", _graph)
    return app


def bind(address: str, port: int) -> socket.socket:
    """The listening socket, bound before the app exists so that port 0's pick is known."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(app: web.Application, sock: socket.socket, ready: asyncio.Event) -> None:
    """Serves until cancelled (Ctrl-C), then closes streams and watches."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
