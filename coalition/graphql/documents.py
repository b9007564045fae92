"""A bounded cache of parsed and validated documents, keyed by query text.

Validation is most of the cost of a small query (~470 µs of ~570 µs on the reference
machine), and clients send the same few query texts over and over, so each text is
parsed and validated once. Documents that fail are cached too, with their errors,
so a client repeating a broken query costs a dict lookup as well.

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

from graphql import DocumentNode, GraphQLError, GraphQLSchema, specified_rules, validate

from coalition.graphql.limits import QueryLimits


class Failure(Enum):
    """Which phase refused a document."""

    PARSE = "parse"
    VALIDATION = "validation"


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A query text after parse and validation: its document (unless it did not parse) and the
    errors that refused it, if any."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...] = ()
    failure: Failure | None = None

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
    """Parse and validate query texts against ``schema`` with ``limits``, remembering results."""

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: QueryLimits | None = None,
        *,
        max_entries: int = 1024,
        max_chars: int = 2_000_000,
        max_validation_errors: int = 20,
    ) -> None:
        self.schema = schema
        self.limits = limits if limits is not None else QueryLimits()
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_validation_errors = max_validation_errors
        self._entries: OrderedDict[str, PreparedDocument] = OrderedDict()
        self._chars = 0
        self._hits = 0
        self._misses = 0
        # asyncio needs no lock (get never awaits); the lock makes threads safe too.
        self._lock = threading.Lock()

    def get(self, query: str) -> PreparedDocument:
        """The prepared document for ``query``, from the cache or freshly prepared."""
        with self._lock:
            prepared = self._entries.get(query)
            if prepared is not None:
                self._entries.move_to_end(query)
                self._hits += 1
                return prepared
            self._misses += 1
        # Prepare outside the lock: two threads racing on one new text both do the work once.
        prepared = self.prepare(query)
        self._store(query, prepared)
        return prepared

    def prepare(self, query: str) -> PreparedDocument:
        """Parse and validate ``query`` without the cache."""
        try:
            document = self.limits.parse(query)
        except GraphQLError as error:
            # A cached error must not keep the parser's frames (and its tokens) alive.
            error.__traceback__ = error.__context__ = error.__cause__ = None
            return PreparedDocument(None, (error,), Failure.PARSE)
        # The limit rules run alone first: they are linear, while the specified rules
        # (OverlappingFieldsCanBeMerged) can be quadratic on the documents they refuse.
        errors = validate(self.schema, document, self.limits.rules, max_errors=self.max_validation_errors)
        if not errors:
            errors = validate(self.schema, document, specified_rules, max_errors=self.max_validation_errors)
        if errors:
            # Keep the document: the endpoint still needs its operation type (mutation over GET).
            return PreparedDocument(document, tuple(errors), Failure.VALIDATION)
        return PreparedDocument(document)

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
