"""An in-process cache of scoring inputs: history documents and their index, POs, suppliers.

Scoring a document reads its supplier's last documents (up to `scoring_history_cap`), the POs
that ordered its items and their receipts. Reading and validating them again on every call cost
about two thirds of a score request. This cache keeps them for as long as the database's
`scoring_inputs` token (app/db/epochs.py) is unchanged; every write that changes master data or
an existing invoice or finding gives the token a new value, so a cached input is never older
than what the same request would have read itself.

Only transactions that have written nothing fill the cache: a writing transaction may be rolled
back, and what it read of its own writes must not outlive it. Entries read under one token are
refused once the cache has moved to another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.db.epochs import has_written, read_token

DOCUMENTS_CAP = 50_000  # history documents (a few kB each once validated)
INDEX_CAP = 1_000  # history indexes (one per supplier history; up to ~200 kB each)
MASTER_CAP = 20_000  # POs, item groups and suppliers
MASTER_SETS_CAP = 2_000  # assembled master data per set of POs (shares the POs cached above)


@dataclass(frozen=True)
class CacheStats:
    """Hits, misses and resets since the process started (for logs and the load bench)."""

    hits: int
    misses: int
    resets: int


class InputCache:
    """Bounded LRU stores per kind of input, valid for one (database, token) pair."""

    def __init__(self, documents_cap: int = DOCUMENTS_CAP, master_cap: int = MASTER_CAP) -> None:
        self._lock = threading.Lock()
        self._caps = {
            "document": documents_cap,
            "history_index": INDEX_CAP,
            "master": MASTER_SETS_CAP,
        }
        self._master_cap = master_cap
        self._stores: dict[str, OrderedDict[Hashable, Any]] = {}
        self._key: tuple[str, str] | None = None
        self._hits = self._misses = self._resets = 0

    def view(self, session: Session) -> CacheView:
        """What this session may read from and add to the cache."""
        token = read_token(session)
        if token is None:  # a database without the token row: cache nothing
            return CacheView(self, None, fill=False)
        key = (str(session.get_bind().engine.url), token)
        fill = not has_written(session)
        with self._lock:
            if key != self._key:
                if not fill:  # a writer's view of the token may never be committed
                    return CacheView(self, None, fill=False)
                self._stores.clear()
                self._key = key
                self._resets += 1
        return CacheView(self, key, fill=fill)

    def stats(self) -> CacheStats:
        """Counts since start."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._resets)

    def clear(self) -> None:
        """Forget everything (tests, or after a restore behind the application's back)."""
        with self._lock:
            self._stores.clear()
            self._key = None

    def _get(self, key: tuple[str, str], kind: str, item: Hashable) -> Any:
        with self._lock:
            store = self._stores.get(kind)
            if key != self._key or store is None or item not in store:
                self._misses += 1
                return None
            store.move_to_end(item)
            self._hits += 1
            return store[item]

    def _put(self, key: tuple[str, str], kind: str, item: Hashable, value: Any) -> None:
        with self._lock:
            if key != self._key:  # read under a token the cache has left since
                return
            store = self._stores.setdefault(kind, OrderedDict())
            store[item] = value
            store.move_to_end(item)
            cap = self._caps.get(kind, self._master_cap)
            while len(store) > cap:
                store.popitem(last=False)


class CacheView:
    """One transaction's access: reads when its token is the cache's, fills when it is clean."""

    def __init__(self, cache: InputCache, key: tuple[str, str] | None, *, fill: bool) -> None:
        self._cache = cache
        self._key = key
        self._fill = fill and key is not None

    def get(self, kind: str, item: Hashable) -> Any:
        """The cached value, or None."""
        if self._key is None:
            return None
        return self._cache._get(self._key, kind, item)

    def split(self, kind: str, items: Iterable[Hashable]) -> tuple[dict[Any, Any], list[Any]]:
        """The cached values among `items`, and the items to read (in the order given)."""
        found: dict[Any, Any] = {}
        missing: list[Any] = []
        for item in items:
            value = self.get(kind, item)
            if value is None:
                missing.append(item)
            else:
                found[item] = value
        return found, missing

    def put(self, kind: str, item: Hashable, value: Any) -> None:
        """Remember a value this transaction read (ignored when it may not fill)."""
        if self._fill and self._key is not None:
            self._cache._put(self._key, kind, item, value)


INPUTS = InputCache()
