"""GraphQL subscriptions over WebSocket on /graphql: the graphql-transport-ws protocol.

    accept ─ connection_init (authenticate) ─ connection_ack ─ subscribe ─ next* ─ complete

- The client must ask for the ``graphql-transport-ws`` subprotocol (else close 4406).
- ``connection_init`` carries ``{"Authorization": "Bearer <key or member token>"}``, checked like
  an HTTP request's header (``web/auth.py``); a bad or missing credential closes with 4403, a
  second ``connection_init`` with 4429, none within ``init_timeout_s`` of opening with 4408 (counted
  from the opening, so pings before the init do not keep an unauthenticated socket open).
- The credential is checked again every ``recheck_s`` while the connection is open: a key revoked
  (or a merchant suspended, a member token expired) mid-stream closes the connection with 4403; a
  check that cannot be made (the database down, a rate limit) leaves it open until the next.
- ``subscribe`` before the ack closes with 4401; an id in use with 4409; a malformed message with
  4400. Each document is priced against the caller's query budget (``limits.py``) like an HTTP
  one; a refused or invalid document gets an ``error`` message for its id. Only subscriptions:
  queries and mutations go over HTTP. At most ``max_subscriptions`` at once per connection
  (more get an ``error`` with ``TOO_MANY_SUBSCRIPTIONS``).
- ``ping`` gets a ``pong``; ``complete`` from the client ends that subscription.
- On disconnect every subscription's task is cancelled and its stream closed: nothing stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema, OperationType, get_operation_ast, subscribe
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from coalition.graphql import errors as codes
from coalition.graphql.documents import DocumentCache, Failure
from coalition.graphql.errors import format_error
from coalition.graphql.limits import Budget

logger = logging.getLogger("coalition.graphql.ws")
PROTOCOL = "graphql-transport-ws"
MAX_MESSAGE_CHARS = 100_000

Authenticate = Callable[[HTTPConnection, object], Awaitable[Any]]
ContextFor = Callable[[Any], Any]


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class GraphQLWebSocket:
    """The ASGI app of the WebSocket route on /graphql."""

    def __init__(self, schema: GraphQLSchema, *, authenticate: Authenticate, context_for: ContextFor,
                 budget_for: Callable[[Any], Budget], documents: DocumentCache | None = None,
                 max_subscriptions: int = 10, init_timeout_s: float = 10.0, recheck_s: float = 60.0) -> None:
        self.schema = schema
        self.authenticate = authenticate
        self.context_for = context_for
        self.budget_for = budget_for
        self.documents = documents or DocumentCache(schema)
        self.max_subscriptions = max_subscriptions
        self.init_timeout_s = init_timeout_s
        self.recheck_s = recheck_s
        self.open_connections = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        self.open_connections += 1
        try:
            await Connection(self, ws).run()
        finally:
            self.open_connections -= 1


class Connection:
    def __init__(self, app: GraphQLWebSocket, ws: WebSocket) -> None:
        self.app, self.ws = app, ws
        self.context: Any = None
        self.init_received = False
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # Closed here too, not only by their task: a task cancelled before it first ran never runs its finally.
        self.streams: dict[str, Any] = {}
        self.sending = asyncio.Lock()
        self.authorization: object = None
        self.caller: Any = None
        self.deadline = asyncio.get_running_loop().time() + app.init_timeout_s  # of the init, then of the recheck

    async def send(self, message: dict[str, Any]) -> None:
        async with self.sending:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))

    async def run(self) -> None:
        if PROTOCOL not in self.ws.scope.get("subprotocols", []):
            await self.ws.accept()
            await self.ws.close(4406, "Subprotocol not acceptable")
            return
        await self.ws.accept(subprotocol=PROTOCOL)
        try:
            await self._loop()
        except _Close as close:
            with contextlib.suppress(Exception):
                await self.ws.close(close.code, close.reason)
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.tasks.values():
                task.cancel()
            for task in list(self.tasks.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.tasks.clear()
            for stream in self.streams.values():
                with contextlib.suppress(Exception):
                    await stream.aclose()
            self.streams.clear()

    async def _receive(self) -> dict[str, Any]:
        while True:
            timeout = max(0.0, self.deadline - asyncio.get_running_loop().time())
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout)
                break
            except TimeoutError:
                if self.context is None:
                    raise _Close(4408, "Connection initialisation timeout") from None
                await self._recheck()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
            raise _Close(4400, "Invalid message: send JSON text")
        try:
            data = json.loads(text)
        except ValueError:
            raise _Close(4400, "Invalid message: not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise _Close(4400, "Invalid message: no type")
        return data

    async def _loop(self) -> None:
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "connection_init":
                await self._init(message.get("payload"))
            elif kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "pong":
                continue
            elif kind == "subscribe":
                await self._subscribe(message)
            elif kind == "complete":
                sub_id = str(message.get("id"))
                task, stream = self.tasks.pop(sub_id, None), self.streams.pop(sub_id, None)
                if task is not None:
                    task.cancel()
                if stream is not None:
                    await stream.aclose()
            else:
                raise _Close(4400, f"Invalid message type {kind[:40]!r}")

    async def _init(self, payload: object) -> None:
        if self.init_received:
            raise _Close(4429, "Too many initialisation requests")
        self.init_received = True
        if payload is not None and not isinstance(payload, dict):
            raise _Close(4400, "Invalid message: the payload must be an object")
        authorization = (payload or {}).get("Authorization", (payload or {}).get("authorization"))
        try:
            caller = await self.app.authenticate(self.ws, authorization)
        except Exception:  # refused (bad key, rate limited, database down): the reason is not told
            caller = None
        if caller is None:
            raise _Close(4403, "Forbidden")
        self.context = self.app.context_for(caller)
        self.authorization, self.caller = authorization, caller
        self.deadline = asyncio.get_running_loop().time() + self.app.recheck_s
        await self.send({"type": "connection_ack"})

    async def _recheck(self) -> None:
        """The credential of ``connection_init`` again: one revoked since closes the connection."""
        self.deadline = asyncio.get_running_loop().time() + self.app.recheck_s
        try:
            caller = await self.app.authenticate(self.ws, self.authorization)
        except Exception as error:
            # The credential refused (401/403) ends the connection; the check not possible now (the
            # database down: 503, a rate limit: 429) leaves it open until the next check.
            if getattr(error, "status", None) not in (401, 403):
                return
            caller = None
        if caller is None or caller != self.caller:
            raise _Close(4403, "Forbidden")

    async def _subscribe(self, message: dict[str, Any]) -> None:
        if self.context is None:
            raise _Close(4401, "Unauthorized")
        sub_id, payload = message.get("id"), message.get("payload")
        if not isinstance(sub_id, str) or not sub_id or len(sub_id) > 100 or not isinstance(payload, dict) \
                or not isinstance(payload.get("query"), str):
            raise _Close(4400, "Invalid message: subscribe needs an id and a payload with a query")
        if sub_id in self.tasks:
            raise _Close(4409, f"Subscriber for {sub_id[:100]} already exists")
        variables, operation_name = payload.get("variables"), payload.get("operationName")
        if (variables is not None and not isinstance(variables, dict)) or \
                (operation_name is not None and not isinstance(operation_name, str)):
            raise _Close(4400, "Invalid message: variables must be an object, operationName a string")
        if len(self.tasks) >= self.app.max_subscriptions:
            await self._error(sub_id, [{"message": f"at most {self.app.max_subscriptions} subscriptions at once "
                                        "per connection", "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}])
            return
        prepared = self.app.documents.get(payload["query"], self.app.budget_for(self.context))
        if prepared.failure is not None or prepared.document is None:
            code = {Failure.PARSE: codes.GRAPHQL_PARSE_FAILED,
                    Failure.VALIDATION: codes.GRAPHQL_VALIDATION_FAILED}.get(prepared.failure)  # type: ignore[arg-type]
            await self._error(sub_id, [format_error(e, code=code) for e in prepared.errors])
            return
        operation = get_operation_ast(prepared.document, operation_name)
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            await self._error(sub_id, [{"message": "only subscriptions go over WebSocket: POST queries and "
                                        "mutations to /graphql", "extensions": {"code": "OPERATION_NOT_SUPPORTED"}}])
            return
        result = await subscribe(self.app.schema, prepared.document, context_value=self.context,
                                 variable_values=variables, operation_name=operation_name)
        if isinstance(result, ExecutionResult):
            await self._error(sub_id, [format_error(e) for e in result.errors or ()])
            return
        self.streams[sub_id] = result
        self.tasks[sub_id] = asyncio.get_running_loop().create_task(self._pump(sub_id, result))

    async def _error(self, sub_id: str, errors: list[dict[str, Any]]) -> None:
        await self.send({"id": sub_id, "type": "error", "payload": errors})

    async def _pump(self, sub_id: str, stream: AsyncIterator[ExecutionResult]) -> None:
        try:
            async for result in stream:
                body: dict[str, Any] = {"data": result.data}
                if result.errors:
                    body["errors"] = [format_error(e) for e in result.errors]
                await self.send({"id": sub_id, "type": "next", "payload": body})
            await self.send({"id": sub_id, "type": "complete"})
        except asyncio.CancelledError:
            raise
        except GraphQLError as exc:
            await self._error(sub_id, [format_error(exc)])
        except Exception as exc:  # the stream ended (the subscriber fell behind): tell this id, keep the rest
            await self._error(sub_id, [{"message": str(exc)[:200], "extensions": {"code": "SUBSCRIPTION_ENDED"}}])
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            if self.tasks.get(sub_id) is asyncio.current_task():
                del self.tasks[sub_id]
                self.streams.pop(sub_id, None)
