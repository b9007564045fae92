"""The Starlette application: /graphql, /healthz, /readyz, /metrics, GraphiQL's assets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from coalition.auth.service import Authenticator, ensure_admin_key
from coalition.config import Settings, load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.graphql.context import Context, Services
from coalition.graphql.http import GraphQLEndpoint, RequestRejected
from coalition.graphql.schema import graphql_schema
from coalition.ledger.service import Ledger
from coalition.metrics import Metrics, MetricsMiddleware
from coalition.network.store import InsightStore
from coalition.ratelimit import make_rate_limiter
from coalition.settlement.policy import PolicyCache
from coalition.web.graphiql import graphiql_html
from coalition.web.network_map import network_map_endpoint
from coalition.web.reports import report_routes

logger = logging.getLogger("coalition.app")


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application. Engines connect lazily; the lifespan starts background work."""
    settings = settings or load_settings()
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    insights = InsightStore(db, settings.redis_url, settings.insights_cache_s)
    keys = NetworkKeys.from_settings(settings)
    # The ledger reads the allowance without proof of presence from the versioned network policy.
    ledger = Ledger(db, settings, keys=keys, allowance=PolicyCache(db, settings).redeem_without_proof_points)
    services = Services(settings=settings, db=db, keys=keys, ledger=ledger,
                        insights=insights)
    authenticator = Authenticator(db, cache_s=settings.auth_cache_s)
    limiter = make_rate_limiter(settings.redis_url, settings.rate_limit_per_s)

    async def context_factory(request: Request) -> Context:
        header = request.headers.get("authorization")
        caller = None
        if header:
            scheme, _, credential = header.partition(" ")
            caller = await authenticator.authenticate(credential.strip()) if scheme.lower() == "bearer" else None
            if caller is None:
                raise RequestRejected(401, "UNAUTHENTICATED", "the API key or member token is invalid or revoked",
                                      {"WWW-Authenticate": "Bearer"})
        client = request.client.host if request.client else "unknown"
        retry_after = await limiter.hit(caller.rate_limit_key if caller else f"ip:{client}")
        if retry_after is not None:
            raise RequestRejected(429, "RATE_LIMITED", "too many requests for this key; slow down",
                                  {"Retry-After": str(max(1, round(retry_after)))})
        return Context(services=services, caller=caller)

    endpoint = GraphQLEndpoint(
        graphql_schema(), context_factory, max_body_bytes=settings.max_query_bytes, max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases, max_tokens=settings.max_tokens, cache_size=settings.document_cache_size,
        graphiql_html=graphiql_html(),
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await db.ping()
        except Exception as exc:  # any failure to reach the database means "not ready"
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/graphql")

    async def sweep_holds() -> None:
        while True:
            await asyncio.sleep(settings.hold_sweep_interval_s)
            try:
                await services.ledger.release_expired_holds()
            except Exception:
                logger.exception("releasing expired holds failed; will retry")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.admin_key:
            await ensure_admin_key(db, settings.admin_key)
        sweeper = asyncio.create_task(sweep_holds()) if settings.hold_sweep_interval_s > 0 else None
        analyzer = None
        if settings.analyze_interval_s > 0:
            # Imported here: numpy, scipy and networkx load only in a process that analyses.
            from coalition.network.jobs import analyze_forever

            analyzer = asyncio.create_task(analyze_forever(db, settings, insights))
        # What is alive once the app has started lives as long as the process: freeze it, so
        # that the collector's full passes skip it. Unfrozen, each pass walked every object in
        # the process and stalled all requests in flight for about 100 ms every few seconds
        # under load (BENCHMARKS.md, finding 5).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if analyzer is not None:
                analyzer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await analyzer
            await insights.aclose()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await limiter.aclose()
            await db.dispose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    metrics = Metrics(frozenset({"/graphql", "/healthz", "/readyz", "/metrics", "/", "/static/*", "/admin/*",
                                 "/statements/*"}))
    app = Starlette(
        routes=[
            Route("/graphql", endpoint, methods=methods),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics.endpoint),
            Route("/", home),
            Route("/admin/network-map.{fmt}", network_map_endpoint(insights, authenticator)),
            Mount("/static", StaticFiles(packages=[("coalition.web", "static")]), name="static"),
            *report_routes(services, authenticator, limiter),
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.authenticator = authenticator
    app.state.limiter = limiter
    return app
