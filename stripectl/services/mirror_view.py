"""The mirror as replay sees it: store rows plus this run's uncommitted changes.

Replay applies a chunk of events in memory, then `flush()` writes the changed
rows in the chunk's transaction. In --dry-run nothing is flushed and the
overlay simply keeps growing, so a dry run simulates exactly what a real run
would do without touching the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from stripectl.store import Store
from stripectl.store import mirror as store_mirror


class OverlayView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[str, dict[str, dict[str, Any] | None]] = defaultdict(dict)
        self.dirty: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.links: dict[str, tuple[str | None, str | None]] = {}
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
        self.cache[table][row["id"]] = row
        self.dirty[table][row["id"]] = row
        if table == "checkout_sessions" and row.get("subscription") and row.get("user_id"):
            self.links[row["subscription"]] = (row.get("user_id"), row.get("plan_name"))

    def checkout_link(self, subscription_id: str) -> tuple[str | None, str | None] | None:
        if subscription_id in self.links:
            return self.links[subscription_id]
        return store_mirror.checkout_link(self.store, subscription_id)

    def invoices_for(self, sub_ids: list[str]) -> list[dict[str, Any]]:
        by_id = {r["id"]: r for r in store_mirror.invoices_for_subscriptions(self.store, sub_ids)}
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

    def set_livemode(self, live: bool) -> None:
        self._livemode, self._livemode_loaded = live, True
        self.livemode_changed = "1" if live else "0"

    def flush(self) -> None:
        """Write changed rows (inside the caller's transaction), then forget them
        so memory stays bounded by a chunk."""
        for table, rows in self.dirty.items():
            store_mirror.put_rows(self.store, table, list(rows.values()))
        self.dirty.clear()
        self.cache.clear()
        self.links.clear()
