"""Price, parse and validate documents, remembering the ones that parse, keyed by query text.

Every document is priced first (``limits.price``: one pass over its tokens that stops at
the first budget it exceeds), against the budget of the caller, before it is parsed or
validated. A refused document is never cached: refusing it again costs less than the space
it would take from the documents clients repeat.

Validation is most of the cost of a small query (~470 µs of ~570 µs on the reference
machine), and clients send the same few query texts over and over, so each text is
parsed and validated once. Documents that fail validation are cached too, with their
errors, so a client repeating a broken query costs a dict lookup as well; syntax errors
are not (parsing stops at the error, and a document the budget let through parses in
bounded time). The key is the text without trailing comments and whitespace, so a client
varying those (to defeat the cache) still hits it; a cached document remembers its price,
and a hit is checked against the budget of the caller at hand.

The cache is bounded twice: by entries (``max_entries``) and by the total length of
the cached query texts (``max_chars``). An AST takes about 100 bytes per character of
its text, so the second bound is what keeps a client spraying distinct large
documents from filling memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate

from coalition.graphql.limits import Budget, Price, price


class Failure(Enum):
    """Which phase refused a document."""

    BUDGET = "budget"
    PARSE = "parse"
    VALIDATION = "validation"


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A query text after parse and validation: its document (unless it did not parse) and the
    errors that refused it, if any."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...] = ()
    failure: Failure | None = None
    price: Price | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    entries: int
    max_entries: int
    chars: int
    max_chars: int


class DocumentCache:
    """Price, parse and validate query texts against ``schema``, remembering results."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        max_entries: int = 1024,
        max_chars: int = 2_000_000,
        max_validation_errors: int = 20,
    ) -> None:
        self.schema = schema
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_validation_errors = max_validation_errors
        self._entries: OrderedDict[str, PreparedDocument] = OrderedDict()
        self._chars = 0
        self._hits = 0
        self._misses = 0
        # asyncio needs no lock (get never awaits); the lock makes threads safe too.
        self._lock = threading.Lock()

    def get(self, query: str, budget: Budget) -> PreparedDocument:
        """The prepared document for ``query`` within ``budget``, from the cache or freshly prepared."""
        prepared = self._lookup(query)
        if prepared is not None:
            # This very text, priced when it was first seen, maybe under a larger budget.
            assert prepared.price is not None
            refusal = prepared.price.over(budget)
            if refusal is not None:
                return PreparedDocument(None, (refusal,), Failure.BUDGET)
            return prepared
        try:
            cost = price(query, budget)
        except GraphQLError as error:
            return PreparedDocument(None, (error,), Failure.BUDGET)
        key = cost.key
        if key != query:  # trailing comments or whitespace: the document without them
            prepared = self._lookup(key)
            if prepared is not None:
                return prepared  # within budget: priced just now
            # The stored price and AST are the key's (a prefix: every location is the same),
            # so that neither keeps the trailing text alive nor counts its tokens.
            cost = cost.of_key()
        with self._lock:
            self._misses += 1
        # Prepare outside the lock: two threads racing on one new text both do the work once.
        prepared = self.prepare(key, cost)
        if prepared.failure is not Failure.PARSE:
            self._store(key, prepared)
        return prepared

    def _lookup(self, key: str) -> PreparedDocument | None:
        with self._lock:
            prepared = self._entries.get(key)
            if prepared is not None:
                self._entries.move_to_end(key)
                self._hits += 1
            return prepared

    def prepare(self, query: str, cost: Price) -> PreparedDocument:
        """Parse and validate ``query``, priced at ``cost``, without the cache."""
        try:
            # The price counts at least the tokens graphql-core does: this is only a backstop.
            document = parse(query, max_tokens=2 * cost.tokens + 16)
        except GraphQLError as error:
            error.__traceback__ = error.__context__ = error.__cause__ = None
            return PreparedDocument(None, (error,), Failure.PARSE, cost)
        errors = validate(self.schema, document, specified_rules, max_errors=self.max_validation_errors)
        if errors:
            # Keep the document: the endpoint still needs its operation type (mutation over GET).
            return PreparedDocument(document, tuple(errors), Failure.VALIDATION, cost)
        return PreparedDocument(document, price=cost)

    def _store(self, query: str, prepared: PreparedDocument) -> None:
        size = len(query)
        if size > self.max_chars or self.max_entries < 1:
            return
        with self._lock:
            if query in self._entries:
                return
            self._entries[query] = prepared
            self._chars += size
            while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                evicted, _ = self._entries.popitem(last=False)
                self._chars -= len(evicted)

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(
                self._hits, self._misses, len(self._entries), self.max_entries, self._chars, self.max_chars
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0
            self._hits = self._misses = 0
