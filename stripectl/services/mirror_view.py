"""The mirror as replay sees it: store rows plus this run's uncommitted changes.

Replay applies a chunk of events in memory, then `flush()` writes the changed
rows in the chunk's transaction. In --dry-run nothing is flushed and the
overlay simply keeps growing, so a dry run simulates exactly what a real run
would do without touching the database.

With `keep_cache` (replay knows no other connection has written: see
services/replay._Run) rows stay cached across flushes, up to CACHE_ROWS per
table, oldest written first out: a subscription touched again a few chunks
later is not read back from SQLite.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Any

from stripectl.store import Store
from stripectl.store import mirror as store_mirror

CACHE_ROWS = 5_000
# Columns rows_where looks rows up by (webhooks/refunds.py: a payment's refunds).
LOOKUP_COLUMNS = {"refunds": ("payment_intent", "charge"), "charges": ("payment_intent",)}


class OverlayView:
    def __init__(self, store: Store) -> None:
        self.keep_cache = False
        self.store = store
        self.cache: dict[str, dict[str, dict[str, Any] | None]] = defaultdict(dict)
        self.dirty: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.links: dict[str, tuple[str | None, str | None]] = {}
        # (table, column, value) -> ids of dirty rows holding it: rows_where's
        # view of this chunk's changes without scanning them all.
        self.dirty_keys: dict[tuple[str, str, Any], set[str]] = defaultdict(set)
        self._livemode: bool | None = None
        self._livemode_loaded = False
        self.livemode_changed: str | None = None

    def prefetch(self, table: str, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in self.cache[table]]
        if not missing:
            return
        found = store_mirror.get_rows(self.store, table, missing)
        for i in missing:
            self.cache[table][i] = found.get(i)

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        if row_id not in self.cache[table]:
            self.cache[table][row_id] = store_mirror.get_row(self.store, table, row_id)
        return self.cache[table][row_id]

    def get_many(self, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        self.prefetch(table, ids)
        return {i: row for i in ids if (row := self.cache[table].get(i)) is not None}

    def put(self, table: str, row: dict[str, Any]) -> None:
        cached = self.cache[table]
        # Upsert semantics: columns the row does not carry keep their values.
        # The merged row is also what gets written: a later put of fewer
        # columns must not lose what an earlier put of this chunk wrote.
        before = cached.pop(row["id"], None)  # re-inserted: newest last (see flush)
        cached[row["id"]] = self.dirty[table][row["id"]] = merged = (
            row if before is None else {**before, **row}
        )
        for column in LOOKUP_COLUMNS.get(table, ()):
            if merged.get(column) is not None:
                self.dirty_keys[(table, column, merged[column])].add(row["id"])
        if table == "checkout_sessions" and row.get("subscription") and row.get("user_id"):
            self.links[row["subscription"]] = (row.get("user_id"), row.get("plan_name"))

    def rows_where(self, table: str, column: str, values: list[str]) -> list[dict[str, Any]]:
        """Rows whose `column` is one of `values`: the stored ones with this
        run's changes over them (for the refunds of a payment intent)."""
        from stripectl.store import refunds as store_refunds

        assert column in LOOKUP_COLUMNS.get(table, ())
        wanted = set(values)
        dirty = self.dirty.get(table, {})
        # Only unflushed rows can differ from the store (cached clean rows were
        # read from it, or written to it by flush).
        by_id = {r["id"]: r for r in store_refunds.rows_where(self.store, table, column, values)}
        for row_id in list(by_id):
            if row_id in dirty:
                by_id[row_id] = dirty[row_id]
        for value in wanted:
            for row_id in self.dirty_keys.get((table, column, value), ()):
                by_id[row_id] = dirty[row_id]
        return [r for r in by_id.values() if r.get(column) in wanted]

    def checkout_link(self, subscription_id: str) -> tuple[str | None, str | None] | None:
        if subscription_id in self.links:
            return self.links[subscription_id]
        return store_mirror.checkout_link(self.store, subscription_id)

    def invoices_for(self, sub_ids: list[str]) -> list[dict[str, Any]]:
        """Candidates for each subscription's newest invoice, as the access
        report reads them: the stored newest (its columns only) and this
        run's cached rows, which win over the stored ones."""
        rows = store_mirror.newest_invoices_for_subscriptions(self.store, sub_ids)
        by_id = {r["id"]: r for r in rows}
        wanted = set(sub_ids)
        for row in self.cache["invoices"].values():
            if row is not None and row.get("subscription") in wanted:
                by_id[row["id"]] = row
        return list(by_id.values())

    def livemode(self) -> bool | None:
        if not self._livemode_loaded:
            value = self.store.meta_get("livemode")
            self._livemode = None if value is None else value == "1"
            self._livemode_loaded = True
        return self._livemode

    def know_livemode(self, live: bool) -> None:
        """The mirror's mode as just read from the store (nothing to write)."""
        self._livemode, self._livemode_loaded = live, True

    def set_livemode(self, live: bool) -> None:
        self._livemode, self._livemode_loaded = live, True
        self.livemode_changed = "1" if live else "0"

    def flush(self) -> None:
        """Write changed rows (inside the caller's transaction), then forget them
        (or, with keep_cache, the oldest) so memory stays bounded."""
        for table, rows in self.dirty.items():
            store_mirror.put_rows(self.store, table, list(rows.values()))
        self.dirty.clear()
        self.dirty_keys.clear()
        if not self.keep_cache:
            self.forget()
            return
        for cached in self.cache.values():
            for row_id in list(islice(cached, max(0, len(cached) - CACHE_ROWS))):
                del cached[row_id]
        if len(self.links) > CACHE_ROWS:
            self.links.clear()

    def forget(self) -> None:
        """Drop every cached row, and the mode: another connection may have
        changed them (a listener may have set the mirror's livemode)."""
        self._livemode_loaded = False
        self.cache.clear()
        self.links.clear()
