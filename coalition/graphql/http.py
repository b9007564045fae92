"""GraphQL over HTTP: one endpoint over graphql-core, after the GraphQL-over-HTTP spec.

    request ─ method ─ Accept ─ context_factory ─ params ─ price ─ parse+validate (cached) ─ execute

- POST ``application/json`` bodies ``{query, variables?, operationName?, extensions?}``;
  GET with the same as query parameters, for queries only (a mutation is 405).
- The response is ``application/graphql-response+json`` when the client accepts it
  first, else ``application/json``. Under the new media type a request that never
  reached execution (parse, validation, variable coercion) is a 400; under the legacy
  one every well-formed GraphQL request is a 200. No ``Accept`` header means legacy.
- Every document is priced against the caller's budget (``budget_for(context)``) before
  it is parsed or validated; one over budget is refused like a validation failure (400
  under the new media type), with ``extensions.code`` naming the budget (``limits.py``),
  after ``refusal_delay_s``: the refusal itself costs well under a millisecond, and the
  delay (a sleeping coroutine, no work) keeps a client that repeats it in a loop from
  taking the event loop away from everyone else. A budget with a ``slowdown`` (the
  anonymous one) makes its caller wait in proportion to what each request cost, so
  costly requests within budget (new texts, large selections) cannot do so either.
- Anything malformed is a 4xx with a GraphQL error body, anything unexpected a 500
  with a generic message: nothing raises out of the endpoint.
- The database unreachable (down, hung, timed out; :mod:`coalition.availability`), in the
  context factory or in any resolver: 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``
  and no ``data``, and no traceback in the log (the tracker logs the outage once).

Mount the endpoint itself (an ASGI app) rather than ``handle`` behind a
``methods=[...]`` route: Starlette would answer other methods with a plain-text 405.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from inspect import isawaitable
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    execute,
    get_operation_ast,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from coalition.availability import RETRY_AFTER_S, SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE, outage_cause
from coalition.graphql import errors as codes
from coalition.graphql.documents import DocumentCache, Failure
from coalition.graphql.errors import format_error, request_error, request_error_code
from coalition.graphql.limits import DEFAULT_BUDGET, Budget
from coalition.logsafe import redacted_traceback
from coalition.text import has_lone_surrogate

logger = logging.getLogger("coalition.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"

ContextFactory = Callable[[Request], Awaitable[object]]
BudgetFor = Callable[[object], Budget]

# A caller with a budget's ``slowdown`` waits for the event loop's CPU time its request took
# beyond this, times ``slowdown``, at most MAX.
SLOWDOWN_FREE_S = 0.001
MAX_SLOWDOWN_S = 5.0


class RequestRejected(Exception):
    """Raised by a context factory to answer the request with ``status_code`` at once.

    For example 401 for a bad API key, or 429 with ``{"Retry-After": "1"}`` when rate
    limited. The client gets a GraphQL error body with ``message`` and ``code``.
    """

    def __init__(
        self, status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r}, headers={self.headers!r})"
        )


class _Refuse(Exception):
    """Internal: stop handling and answer with this status and error."""

    def __init__(self, status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def _unavailable() -> _Refuse:
    return _Refuse(503, SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE, {"Retry-After": str(RETRY_AFTER_S)})


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None when we have none it takes.

    The highest quality wins; among equals, the one listed first. No header at all
    means ``application/json`` (the spec's legacy rules), as does ``*/*``.
    """
    if accept is None or not accept.strip():
        return APPLICATION_JSON
    best: str | None = None
    best_q = 0.0
    for part in accept.split(","):
        media_range, _, params = part.partition(";")
        media_range = media_range.strip().lower()
        if media_range == GRAPHQL_RESPONSE_JSON:
            candidate = GRAPHQL_RESPONSE_JSON
        elif media_range in (APPLICATION_JSON, "application/*", "*/*"):
            candidate = APPLICATION_JSON
        else:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = candidate, q
    return best


def _accepts_html(accept: str | None) -> bool:
    return accept is not None and "text/html" in accept.lower()


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _dumps(body: object) -> bytes:
    # "replace": should an unpaired surrogate ever reach a response, it becomes "?" rather than a 500.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


_LONE_SURROGATE = ("The request has invalid Unicode: a lone surrogate (e.g. \\ud800 not followed by a low "
                   "surrogate) in a string. Send each character outside the BMP as a surrogate pair, or as UTF-8.")


class GraphQLEndpoint:
    """The ``/graphql`` endpoint: an ASGI app, or ``handle(request)`` for a Starlette route."""

    def __init__(
        self,
        schema: GraphQLSchema,
        context_factory: ContextFactory,
        *,
        max_body_bytes: int = 100_000,
        budget_for: BudgetFor | Budget = DEFAULT_BUDGET,
        refusal_delay_s: float = 0.0,
        cache_size: int = 1024,
        cache_max_chars: int = 2_000_000,
        graphiql_html: str | None = None,
    ) -> None:
        self.schema = schema
        self.context_factory = context_factory
        self.max_body_bytes = max_body_bytes
        # The caller's budget, from the context the factory made (one budget for everyone if given one).
        self.budget_for: BudgetFor = (lambda _: budget_for) if isinstance(budget_for, Budget) else budget_for
        self.refusal_delay_s = refusal_delay_s
        self.documents = DocumentCache(schema, max_entries=cache_size, max_chars=cache_max_chars)
        self.graphiql_html = graphiql_html

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - Route only routes HTTP here
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """Answer one request; never raises (short of cancellation)."""
        started = time.perf_counter()
        media_type = APPLICATION_JSON
        try:
            method = request.method
            if method not in ("GET", "POST"):
                raise _Refuse(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"{method} is not supported: use GET or POST.",
                    {"Allow": "GET, POST"},
                )
            accept = request.headers.get("accept")
            if (
                method == "GET"
                and self.graphiql_html is not None
                and "query" not in request.query_params
                and _accepts_html(accept)
            ):
                return Response(self.graphiql_html, media_type="text/html")
            negotiated = negotiate(accept)
            if negotiated is None:
                raise _Refuse(
                    406,
                    "NOT_ACCEPTABLE",
                    f"Cannot answer in any type of Accept: {accept}; "
                    f"accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}.",
                )
            media_type = negotiated
            try:
                context = await self.context_factory(request)
            except RequestRejected as rejected:
                raise _Refuse(
                    rejected.status_code, rejected.code, rejected.message, rejected.headers
                ) from None
            if method == "GET":
                params = self._get_params(request)
            else:
                params = await self._post_params(request)
            return await self._run(method, media_type, context, *params, started=started)
        except _Refuse as refused:
            return self._respond(
                media_type, request_error(refused.message, refused.code), refused.status_code, refused.headers
            )
        except ClientDisconnect:
            return self._respond(media_type, request_error("Client disconnected.", codes.BAD_REQUEST), 400)
        except Exception as error:
            if outage_cause(error) is not None:
                unavailable = _unavailable()
                return self._respond(media_type, request_error(unavailable.message, unavailable.code),
                                     unavailable.status_code, unavailable.headers)
            logger.error("unexpected error handling a GraphQL request: %s", redacted_traceback(error))
            return self._respond(
                media_type, request_error(codes.INTERNAL_MESSAGE, codes.INTERNAL_SERVER_ERROR), 500
            )

    async def _run(
        self,
        method: str,
        media_type: str,
        context: object,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        *,
        started: float,
    ) -> Response:
        budget = self.budget_for(context)
        # The event loop's CPU time, not the wall clock: what the request cost everyone else
        # (the database's threads excluded), whatever else runs on the machine.
        cpu_started = time.thread_time()
        response, refused = await self._answer(method, media_type, context, query, variables, operation_name, budget)
        work_s = time.thread_time() - cpu_started
        wait_s = self.refusal_delay_s if refused else 0.0
        if budget.slowdown and work_s > SLOWDOWN_FREE_S:
            wait_s = max(wait_s, min(MAX_SLOWDOWN_S, budget.slowdown * (work_s - SLOWDOWN_FREE_S)))
        if refused:  # what refusing cost (body, JSON, price), for clients and benchmarks to see
            response.headers["Server-Timing"] = f"refuse;dur={1000 * (time.perf_counter() - started):.3f}"
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        return response

    async def _answer(
        self,
        method: str,
        media_type: str,
        context: object,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        budget: Budget,
    ) -> tuple[Response, bool]:
        """The response, and whether the document was refused as over budget."""
        prepared = self.documents.get(query, budget)
        if prepared.failure is Failure.BUDGET:
            return self._request_errors(media_type, prepared.errors, None), True  # each names its budget
        if prepared.failure is Failure.PARSE:
            return self._request_errors(media_type, prepared.errors, codes.GRAPHQL_PARSE_FAILED), False
        document = prepared.document
        assert document is not None
        operation = get_operation_ast(document, operation_name)
        if method == "GET" and operation is not None and operation.operation is not OperationType.QUERY:
            raise _Refuse(
                405,
                "METHOD_NOT_ALLOWED",
                f"Cannot run a {operation.operation.value} over GET: use POST.",
                {"Allow": "POST"},
            )
        if prepared.failure is Failure.VALIDATION:
            return self._request_errors(media_type, prepared.errors, codes.GRAPHQL_VALIDATION_FAILED), False
        if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
            raise _Refuse(
                400, "OPERATION_NOT_SUPPORTED", "Subscriptions are not supported over this endpoint."
            )

        result = execute(
            self.schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        if result.errors and any(outage_cause(error) is not None for error in result.errors):
            # A partial answer would mix what ran with what could not; the client retries the
            # whole request (its writes carry idempotency keys).
            raise _unavailable()

        if operation is None:  # unknown operationName, or several operations and none named
            return self._request_errors(media_type, result.errors or (), codes.OPERATION_RESOLUTION_FAILURE), False
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            # Nothing ran: variable coercion refused the request (field errors have paths).
            return self._request_errors(media_type, result.errors, None), False

        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [format_error(error) for error in result.errors]
        body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        return self._respond(media_type, body, 200), False

    def _request_errors(self, media_type: str, errors: Iterable[GraphQLError], code: str | None) -> Response:
        """Errors that stopped the request before execution: no ``data`` key."""
        formatted = [format_error(error, code=code or request_error_code(error)) for error in errors]
        status = 400 if media_type == GRAPHQL_RESPONSE_JSON else 200
        return self._respond(media_type, {"errors": formatted}, status)

    def _respond(
        self, media_type: str, body: object, status_code: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        return Response(_dumps(body), status_code, headers, f"{media_type}; charset=utf-8")

    def _get_params(self, request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
        query_params = request.query_params
        params: dict[str, object] = {
            "query": query_params.get("query"),
            "operationName": query_params.get("operationName"),
        }
        for name in ("variables", "extensions"):
            if name in query_params:
                params[name] = self._json_param(name, query_params[name])
        return self._check_params(params)

    async def _post_params(self, request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
        content_type = request.headers.get("content-type")
        if content_type is None:
            raise _Refuse(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Missing Content-Type: send the request as {APPLICATION_JSON}.",
            )
        media, _, parameters = content_type.partition(";")
        if media.strip().lower() != APPLICATION_JSON:
            raise _Refuse(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Unsupported Content-Type {media.strip()!r}: send {APPLICATION_JSON}.",
            )
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise _Refuse(
                    415, "UNSUPPORTED_MEDIA_TYPE", f"Unsupported charset {value.strip()!r}: send UTF-8."
                )

        body = await self._read_body(request)
        if not body.strip():
            raise _Refuse(
                400, codes.BAD_REQUEST, "The request body is empty: send a JSON object with a query."
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:
            detail = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 JSON"
            raise _Refuse(400, codes.BAD_REQUEST, f"The request body is not valid JSON ({detail}).") from None
        if not isinstance(payload, dict):
            raise _Refuse(
                400, codes.BAD_REQUEST, f"The request body must be a JSON object, not {_json_type(payload)}."
            )
        return self._check_params(payload)

    async def _read_body(self, request: Request) -> bytes:
        too_large = _Refuse(
            413, "PAYLOAD_TOO_LARGE", f"The request body is larger than {self.max_body_bytes} bytes."
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _json_param(name: str, value: str) -> object:
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise _Refuse(400, codes.BAD_REQUEST, f"The {name!r} parameter is not valid JSON.") from None

    @staticmethod
    def _check_params(params: Mapping[str, object]) -> tuple[str, dict[str, Any] | None, str | None]:
        if has_lone_surrogate(params):  # once here, for every string of every operation
            raise _Refuse(400, codes.BAD_REQUEST, _LONE_SURROGATE)
        query = params.get("query")
        if query is None:
            raise _Refuse(400, codes.BAD_REQUEST, "Missing 'query': send the GraphQL document as a string.")
        if not isinstance(query, str):
            raise _Refuse(400, codes.BAD_REQUEST, f"'query' must be a string, not {_json_type(query)}.")
        variables = params.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise _Refuse(
                400,
                codes.BAD_REQUEST,
                f"'variables' must be an object (or null), not {_json_type(variables)}.",
            )
        operation_name = params.get("operationName")
        if operation_name is not None and not isinstance(operation_name, str):
            raise _Refuse(
                400,
                codes.BAD_REQUEST,
                f"'operationName' must be a string (or null), not {_json_type(operation_name)}.",
            )
        extensions = params.get("extensions")
        if extensions is not None and not isinstance(extensions, dict):
            raise _Refuse(
                400,
                codes.BAD_REQUEST,
                f"'extensions' must be an object (or null), not {_json_type(extensions)}.",
            )
        return query, variables, operation_name
