"""Which database exceptions are the local store's fault (exit 6), not a bug (exit 70).

A corrupted page ("database disk image is malformed"), a file that is not a
database, a full disk, an I/O error or a lock that never came are faults of
the mirror file and its disk: every command reports them as `error:` with
exit 6, whichever query met them first (issue 11: `inbox export` and
`replay-webhook --dry-run` said "bug, report it"). Misuse of the API
(ProgrammingError, IntegrityError, ...) stays a bug. An engine added later
(PostgreSQL) adds its own classes here.
"""

from __future__ import annotations

from stripectl.errors import StoreError

_DAMAGED = ("malformed", "not a database", "corrupt")


def store_fault(exc: BaseException) -> StoreError | None:
    """The StoreError `exc` stands for, or None when it is not a store fault."""
    import sqlite3
    import sys

    psycopg = sys.modules.get("psycopg")  # loaded only for a postgresql:// mirror
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        # The server went away, refused us, ran out of space or timed out.
        return StoreError(f"the mirror cannot be read or written: {str(exc).strip()[:300]}",
                          hint="check that the PostgreSQL server runs and accepts this role")

    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
                  | sqlite3.NotSupportedError):
        return None
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    text = str(exc)
    if any(word in text.lower() for word in _DAMAGED):
        return StoreError(
            f"the mirror is damaged: {text}",
            hint="restore it from a backup, or move it aside and rebuild it (stripectl sync; "
            "replay-webhook your saved deliveries); `sqlite3 FILE .recover` can salvage rows",
        )
    return StoreError(f"the mirror cannot be read or written: {text}",
                      hint="check the disk (space, permissions) and that no other process "
                      "holds the file locked")
