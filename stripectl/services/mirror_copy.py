"""Moving a mirror between engines: `stripectl mirror copy SRC DST`."""

from __future__ import annotations

from collections.abc import Callable

from stripectl.errors import UsageError
from stripectl.store import open_store
from stripectl.store.copy import CopyReport, copy_mirror


def copy(
    source: str,
    destination: str,
    *,
    source_schema: str | None = None,
    destination_schema: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every table of the mirror at `source` into a new (empty) mirror
    at `destination` (created and migrated if need be), verified by row
    counts and checksums. The source is only read."""
    if source == destination and (source_schema or "") == (destination_schema or ""):
        raise UsageError("SRC and DST are the same mirror")
    src = open_store(source, dry_run=True, schema=source_schema)
    try:
        if src.path == ":memory:":  # a dry run found nothing there
            raise UsageError(f"there is no mirror at {source}")
        dst = open_store(destination, schema=destination_schema)
        try:
            return copy_mirror(src, dst, progress=progress)
        finally:
            dst.close()
    finally:
        src.close()
