"""The README's schema table lists every column of every table, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from stripectl.store import open_store

README = Path(__file__).resolve().parent.parent / "README.md"


def _documented() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The mirror (SQLite)") :]
    section = section[: section.index("\n## ", 1)]
    tables: dict[str, set[str]] = {}
    for table, cells in re.findall(r"^\| `(\w+)` \| (.+) \|$", section, flags=re.M):
        cells = re.sub(r"\([^()]*(\([^()]*\)[^()]*)*\)", "", cells)  # annotations, nested once
        if ":" in cells.split(",")[0]:  # "the ledger (...): key, ..."
            cells = cells.split(":", 1)[1]
        tables[table] = {m.group(1) for c in cells.split(",") if (m := re.match(r"\s*(\w+)", c))}
    return tables


def _actual(tmp_path: Path) -> dict[str, set[str]]:
    store = open_store(str(tmp_path / "m.db"))
    try:
        names = [
            r[0]
            for r in store.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: {r[1] for r in store.conn.execute(f"PRAGMA table_info({t})")} for t in names}
    finally:
        store.close()


def test_every_column_of_every_table_is_in_the_readme(tmp_path: Path) -> None:
    documented, actual = _documented(), _actual(tmp_path)
    assert set(documented) == set(actual)
    for table, columns in actual.items():
        assert documented[table] == columns, (
            table, "missing:", columns - documented[table], "not in the schema:", documented[table] - columns
        )


def test_status_since_exact_is_documented() -> None:
    assert "status_since_exact" in _documented()["subscriptions"]
