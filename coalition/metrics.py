"""Prometheus metrics for ``/metrics``: request counts and latency per route, process figures.

Every application gets its own registry, so tests that build many apps never collide.
With several uvicorn workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
shared by the workers: each worker then writes its samples there and any worker's
``/metrics`` answers for all of them (prometheus_client's multiprocess mode).
Labels are bounded: the route is one of the application's paths or ``other``, never
the raw URL, and nothing about the caller (no keys, no loyalty IDs) is recorded.

On the API's address ``/metrics`` needs an admin key or ``COALITION_METRICS_TOKEN``.
:class:`MetricsServer` serves the same text without credentials on an address of its
own (``coalition serve --metrics-port``), one a firewall keeps private.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets sized for a ledger API whose p99 target is 50 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, routes: frozenset[str]) -> None:
        self.routes = routes
        self.registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
            metric_registry: CollectorRegistry | None = None  # samples go to the shared directory
        else:
            ProcessCollector(registry=self.registry)
            metric_registry = self.registry
        self.requests = Counter(
            "coalition_http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=metric_registry,
        )
        self.latency = Histogram(
            "coalition_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=metric_registry,
        )

    def route_of(self, path: str) -> str:
        if path in self.routes:
            return path
        first = "/" + path.strip("/").split("/", 1)[0]
        return f"{first}/*" if f"{first}/*" in self.routes else "other"

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        route = self.route_of(path)
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI middleware: times every HTTP request and counts it by route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.observe(scope["path"], scope["method"], status, time.perf_counter() - started)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape in the server's log."""


class MetricsServer:
    """``GET /metrics`` without credentials on ``host:port``, in a thread of this process.

    The socket is bound with SO_REUSEPORT, so every worker of ``coalition serve --workers N``
    binds the same port and the kernel hands each scrape to one of them (with
    ``PROMETHEUS_MULTIPROC_DIR`` set, any worker answers for all, as on the API's address).
    """

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

        class Server(ThreadingWSGIServer):
            address_family = family

            def server_bind(self) -> None:
                if hasattr(socket, "SO_REUSEPORT"):
                    self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                super().server_bind()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"metrics are at GET /metrics\n"]
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest(metrics.registry)]

        self.httpd: WSGIServer = make_server(host, port, app, Server, handler_class=_QuietHandler)
        self.port = self.httpd.server_port
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
