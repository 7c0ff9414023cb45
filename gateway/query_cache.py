"""Parsed and validated GraphQL documents, remembered per department schema (issue 15.2).

Parsing and graphql-core's validation cost milliseconds per request and give the same answer for
the same text on the same schema, so each department keeps the documents it has parsed, by the
SHA-256 of the query text (and the parse options, such as the token limit), least recently used
first out, bounded in (estimated) bytes; and, for a document that passed validation once on that
schema with the same rules, it skips validation.

What is not remembered here runs on every request as before: the query limits
(:class:`gateway.limits.QueryLimits`, which depend on the variables) and the access check
(:class:`gateway.access.Refusal`, its own cache keyed by the token's purpose too) both run
before this extension's validation step and, when they refuse, leave the errors that make it
stand aside. A document that fails to parse is not kept, and one that fails validation is
validated again each time (its errors are built anew: no error object is shared between
responses).

strawberry's own ``ParserCache`` and ``ValidationCache`` are not used: they are process-wide
``functools.lru_cache`` keyed by the whole text (held in memory) and bounded by count only, and
``ValidationCache`` overwrites the refusal that the limits or the access check set before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import graphql
from cachetools import LRUCache
from strawberry.extensions import SchemaExtension

from gateway.config import Settings

ENTRY_OVERHEAD = 2_000
"""Bytes counted for an entry beside its document (key, entry, cache bookkeeping)."""
BYTES_PER_CHARACTER = 300
"""Bytes a parsed document holds per character of its text (measured: 80–290, short queries
highest), so the bound holds for any mix of queries."""

Key = tuple[bytes, Hashable]
P = TypeVar("P")


@dataclass
class Entry:
    document: graphql.DocumentNode
    size: int
    validated: frozenset[Hashable] = frozenset()
    """The validation rule sets the document has passed (on this department's schema)."""


def _size(entry: Entry) -> int:
    return entry.size


class QueryCache:
    """One department's parsed documents, bounded by :data:`BYTES_PER_CHARACTER` × text length
    (+ :data:`ENTRY_OVERHEAD`) in total; ``max_bytes = 0`` keeps nothing."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: LRUCache[Key, Entry] = LRUCache(maxsize=max(max_bytes, 1), getsizeof=_size)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return int(self._entries.currsize)

    @staticmethod
    def key(query: str, parse_options: Mapping[str, object]) -> Key:
        return hashlib.sha256(query.encode()).digest(), tuple(sorted(parse_options.items()))

    def get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: Key, query: str, document: graphql.DocumentNode) -> Entry | None:
        """Keep ``document``; the entry, or None when it is larger than the whole cache."""
        size = ENTRY_OVERHEAD + BYTES_PER_CHARACTER * len(query)
        if not self.max_bytes or size > self.max_bytes:
            return None
        entry = self._entries[key] = Entry(document, size)
        return entry


class CachedDocuments(SchemaExtension):
    """The schema extension that serves a department's :class:`QueryCache`. Registered after the
    limits and the access check (whose refusals it leaves as they are)."""

    def __init__(self, cache: QueryCache) -> None:
        self.cache = cache
        self._key: Key | None = None
        self._entry: Entry | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query and context.graphql_document is None:
            self._key = self.cache.key(query, context.parse_options)
            self._entry = self.cache.get(self._key)
            if self._entry is not None:
                context.graphql_document = self._entry.document  # strawberry then skips parsing
        yield
        document = context.graphql_document
        if (
            self._key is not None
            and self._entry is None
            and query
            and document is not None
            and context.pre_execution_errors is None
        ):
            self._entry = self.cache.put(self._key, query, document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        rules = tuple(context.validation_rules)
        entry = self._entry
        skipped = False
        if entry is not None and context.pre_execution_errors is None and rules in entry.validated:
            context.pre_execution_errors = []  # validated before: strawberry skips validation
            skipped = True
        yield
        if entry is not None and not skipped and context.pre_execution_errors == []:
            entry.validated = entry.validated | {rules}


def cached_documents(settings: Settings) -> Callable[[], CachedDocuments]:
    """The extension factory of one department schema: one cache of
    ``settings.document_cache_bytes`` for all its requests."""
    cache = QueryCache(settings.document_cache_bytes)
    return lambda: CachedDocuments(cache)


PlanKey = tuple[Key, str | None]
"""A document's :meth:`QueryCache.key` and the operation name."""


class PlanCache(Generic[P]):
    """One department's compiled read plans (issue 15.2), by (document hash and parse options,
    operation name), least recently used first out, at most ``max_entries``; a document the
    compiler does not cover is remembered too (as ``None``), so it is not compiled again.
    The department is the cache's owner (one per department schema)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: LRUCache[PlanKey, P | None] = LRUCache(maxsize=max(max_entries, 1))
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: PlanKey, compute: Callable[[], P | None]) -> P | None:
        try:
            found = self._entries[key]
        except KeyError:
            self.misses += 1
            found = compute()
            if self.max_entries:
                self._entries[key] = found
            return found
        self.hits += 1
        return found
