"""The Starlette application: /graphql, /healthz, /readyz, /metrics, GraphiQL's assets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from coalition.auth.service import Authenticator, ensure_admin_key
from coalition.availability import RETRY_AFTER_S, Availability
from coalition.config import Settings, load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, Timeouts
from coalition.giftcards.guard import LOOKUP_FAILURES, GuessGuard
from coalition.giftcards.service import GiftCards
from coalition.graphql.context import Context, Services
from coalition.graphql.http import GraphQLEndpoint
from coalition.graphql.limits import query_budgets
from coalition.graphql.schema import graphql_schema
from coalition.graphql.ws import GraphQLWebSocket
from coalition.ledger.service import Ledger
from coalition.live.broker import Broker
from coalition.metrics import Metrics, MetricsMiddleware, MetricsServer
from coalition.network.store import InsightStore
from coalition.programs.earning import ProgramHook
from coalition.ratelimit import make_rate_limiter
from coalition.settlement.policy import PolicyCache
from coalition.web import pages
from coalition.web.auth import AuthBackend, caller_of, on_auth_error, require_scope
from coalition.web.graphiql import graphiql_html
from coalition.web.network_map import network_map_endpoint
from coalition.web.outage import OutageMiddleware
from coalition.web.portability import portability_routes
from coalition.web.reports import report_routes
from coalition.web.routes import page_routes
from coalition.webhooks.outbox import install
from coalition.worker import start_in_process

logger = logging.getLogger("coalition.app")

READYZ_TIMEOUT_S = 0.8  # /readyz answers within 1 s, whatever the database does
# A request's transaction idle this long between statements is ended by PostgreSQL (db.Timeouts). Requests
# run their statements back to back; the CSV exports read in short transactions between chunks.
IDLE_IN_TRANSACTION_S = 60.0


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application. Engines connect lazily; the lifespan starts background work."""
    settings = settings or load_settings()
    timeouts = Timeouts(connect_s=settings.db_connect_timeout_s or None,
                        command_s=settings.db_command_timeout_s or None,
                        statement_s=settings.db_statement_timeout_s or None, pool_s=settings.db_pool_timeout_s,
                        idle_in_transaction_s=IDLE_IN_TRANSACTION_S)
    db = Database(settings.database_url, pool_size=settings.db_pool_size, timeouts=timeouts)
    redis_availability = Availability("redis", probe_interval_s=5.0)  # one log line per Redis outage
    insights = InsightStore(db, settings.redis_url, settings.insights_cache_s, timeout_s=settings.redis_timeout_s,
                            health_check_s=settings.redis_health_check_s, availability=redis_availability)
    keys = NetworkKeys.from_settings(settings)
    # The ledger reads the allowance without proof of presence from the versioned network policy.
    policies = PolicyCache(db, settings)  # also the pages' time zone (coalition.web.pages)
    ledger = Ledger(db, settings, keys=keys, allowance=policies.redeem_without_proof_points,
                    programs=ProgramHook(db))  # tiers and campaigns on earns
    # Every write fills the webhooks outbox in its own transaction and, once committed, goes to
    # the live subscriptions of every API process (through Redis when there is one).
    live = Broker(settings.redis_url)
    install(db, cache_s=settings.webhook_cache_s, publish=live.publish)
    services = Services(settings=settings, db=db, keys=keys, ledger=ledger,
                        insights=insights, live=live, policies=policies)
    authenticator = Authenticator(db, cache_s=settings.auth_cache_s, settings=settings)
    limiter = make_rate_limiter(settings.redis_url, settings.rate_limit_per_s, timeout_s=settings.redis_timeout_s,
                                health_check_s=settings.redis_health_check_s, availability=redis_availability)
    failures = limiter.companion(settings.auth_failures_per_min, window_s=60, prefix="coalition:authfail:")
    # Failed gift card look-ups, counted per caller where every API process sees them (coalition/giftcards/guard.py).
    services.gift_cards = GiftCards(db, settings, keys, guard=GuessGuard(limiter.companion(
        settings.gift_card_lookup_failures, window_s=settings.gift_card_lookup_window_s,
        prefix="coalition:giftfail:")))
    services.lookup_limiter = limiter.companion(settings.lookup_per_min, window_s=60, prefix="coalition:lookup:")
    auth = AuthBackend(authenticator, limiter, failures, metrics_token=settings.metrics_token)

    async def context_factory(request: Request) -> Context:
        # AuthBackend (the middleware) has authenticated and rate-limited the request already.
        return Context(services=services, caller=caller_of(request))

    endpoint = GraphQLEndpoint(
        graphql_schema(), context_factory, max_body_bytes=settings.max_query_bytes, budget_for=query_budgets(settings),
        refusal_delay_s=settings.refusal_delay_s, cache_size=settings.document_cache_size,
        graphiql_html=graphiql_html(),
    )
    subscriptions = GraphQLWebSocket(
        graphql_schema(), authenticate=auth.authenticate_init,
        context_for=lambda caller: Context(services=services, caller=caller), budget_for=query_budgets(settings),
        max_subscriptions=settings.ws_max_subscriptions, recheck_s=settings.ws_recheck_s)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    pings: list[asyncio.Task[None]] = []  # the ping in flight: probes that arrive meanwhile wait for it

    async def readyz(request: Request) -> Response:
        # The ping runs as a task of its own that /readyz waits for at most READYZ_TIMEOUT_S:
        # cancelling it mid-statement would leave its connection in doubt, and its own timeouts
        # end it soon anyway. The availability tracker logs the outage (once), not each probe.
        if not pings or pings[0].done():
            ping = asyncio.create_task(db.ping())
            ping.add_done_callback(lambda task: task.cancelled() or task.exception())
            pings[:] = [ping]
        done, _ = await asyncio.wait(pings, timeout=READYZ_TIMEOUT_S)
        if not done or pings[0].cancelled() or pings[0].exception() is not None:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503,
                                headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"})
        return JSONResponse({"status": "ok", "database": "ok"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/graphql")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.admin_key:
            await ensure_admin_key(db, settings.admin_key)
        stack = contextlib.AsyncExitStack()
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server = MetricsServer(metrics, settings.metrics_host, settings.metrics_port)
        app.state.metrics_server = metrics_server
        # Periodic jobs (holds, expiry, settlement, the analysis) run in `coalition worker`;
        # here only with COALITION_RUN_WORKER=1 (coalition/worker.py, on an engine of its own).
        scheduler = await stack.enter_async_context(start_in_process(settings, keys, redis_availability))
        app.state.scheduler = scheduler
        pages.warm_up()  # templates and languages: not in the first visitor's request
        # What is alive once the app has started lives as long as the process: freeze it, so
        # that the collector's full passes skip it. Unfrozen, each pass walked every object in
        # the process and stalled all requests in flight for about 100 ms every few seconds
        # under load (docs/benchmarks-journal.md, finding 5).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if metrics_server is not None:
                await asyncio.to_thread(metrics_server.close)  # waits up to half a second for its loop
            await stack.aclose()
            await insights.aclose()
            await live.aclose()
            await limiter.aclose()
            await db.dispose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    metrics = Metrics(frozenset({"/graphql", "/healthz", "/readyz", "/metrics", "/", "/static/*", "/admin/*",
                                 "/statements/*", "/console/*", "/me/*", "/login"}))
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics.registry.register(LOOKUP_FAILURES)
    app = Starlette(
        routes=[
            Route("/graphql", endpoint, methods=methods),
            WebSocketRoute("/graphql", subscriptions),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", require_scope(("admin", "metrics"), "/metrics", metrics.endpoint)),
            Route("/", home),
            Route("/admin/network-map.{fmt}", network_map_endpoint(insights)),
            Mount("/static", StaticFiles(packages=[("coalition.web", "static")]), name="static"),
            *report_routes(services),
            *portability_routes(settings, db, keys),
            *page_routes(),
        ],
        # OutageMiddleware before (outside) the authentication, which reads the database: 503, not 500.
        middleware=[Middleware(MetricsMiddleware, metrics=metrics), Middleware(OutageMiddleware),
                    Middleware(AuthenticationMiddleware, backend=auth, on_error=on_auth_error)],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.authenticator = authenticator
    app.state.limiter = limiter
    app.state.subscriptions = subscriptions
    app.state.login_failures = failures  # wrong passwords share an address's budget with bad keys
    return app
