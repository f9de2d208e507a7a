"""The store's SQL (`?` placeholders) in psycopg's paramstyle."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """`?` -> `%s` and a literal `%` -> `%%`, outside quoted strings and identifiers."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)
