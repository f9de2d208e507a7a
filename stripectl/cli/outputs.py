"""Output files a command will write, and the status an exception ends it with.

Checked before any work starts (a report that cannot be written at the end
must not cost a full listing first), and used where a command records its own
exit code (reconcile_runs) so the record says what the process returned.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def check_writable(paths: list[Path]) -> None:
    """Refuse, before any request, an output that could not be written at the
    end (a missing folder, a read-only file, a folder, the same file twice)."""
    from stripectl.errors import UsageError

    seen: set[Path] = set()
    for path in paths:
        where = path.resolve()
        if where in seen:
            raise UsageError(f"{path}: named twice as an output")
        seen.add(where)
        parent = path.parent
        if path.is_dir():
            raise UsageError(f"cannot write {path}: it is a folder")
        if not parent.is_dir():
            raise UsageError(f"cannot write {path}: folder {parent} does not exist")
        if not os.access(path if path.exists() else parent, os.W_OK):
            raise UsageError(f"cannot write {path}: permission denied")


def exit_code_of(exc: BaseException) -> int:
    """The status `guarded` will end the process with for `exc`."""
    from stripectl import errors
    from stripectl.cli.common import SIGPIPE_EXIT, stdout_is_gone

    if isinstance(exc, errors.StripectlError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, BrokenPipeError) and stdout_is_gone():
        return SIGPIPE_EXIT
    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    from stripectl.store.faults import store_fault

    fault = store_fault(exc) if isinstance(exc, Exception) else None
    return fault.exit_code if fault is not None else errors.BUG
