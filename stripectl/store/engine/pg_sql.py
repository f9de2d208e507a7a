"""The store's SQL (`?` placeholders) in PostgreSQL's own ($1, $2, ...).

The engine runs it on psycopg's RawCursor, which sends the text as it is:
psycopg's `%s` queries are split in Python on every execution of a text it
does not cache, and it caches none over 4,096 characters or 50 parameters.
put_rows' multi-row upserts (hundreds of rows a statement, thousands of
parameters) spent ~40% of a PostgreSQL replay's main-process time there.
"""

from __future__ import annotations

import re

_PIECES = re.compile(r"'[^']*'|\"[^\"]*\"|\?")
_CACHED_LENGTH = 8192  # longer texts are converted each time (fast) rather than kept
_cache: dict[str, str] = {}


def native(sql: str) -> str:
    """`?` -> `$1`, `$2`, ... outside quoted strings and identifiers."""
    found = _cache.get(sql)
    if found is not None:
        return found
    if "'" not in sql and '"' not in sql:
        parts = sql.split("?")
        out = [parts[0]]
        for n, part in enumerate(parts[1:], 1):
            out.append(f"${n}")
            out.append(part)
        text = "".join(out)
    else:
        counter = iter(range(1, 1 << 30))
        text = _PIECES.sub(lambda m: f"${next(counter)}" if m.group() == "?" else m.group(), sql)
    if len(sql) <= _CACHED_LENGTH:
        if len(_cache) >= 1024:
            _cache.clear()  # a bound, not an LRU: the store's texts are few
        _cache[sql] = text
    return text
