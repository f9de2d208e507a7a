"""What every command shares: --db/--json/--debug, error handling, output streams.

Options work before the command name (`stripectl --json replay-webhook ...`) and
after it (`stripectl replay-webhook ... --json`); the later one wins. An explicit
option, wherever it is, beats its env var, which beats the default: so the env
var is read here, once, and never by the options themselves (an option filled
from the env var after the command name would beat an explicit one before it).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import select
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    # Imported where used: rich.console costs ~25 ms that `--help` and a
    # completion request must not pay.
    from rich.console import Console

from stripectl import errors
from stripectl.redact import redact

DEFAULT_DB = "stripectl.db"
# One encoder for all: json.dumps() with any keyword builds a new one per call.
_ENCODER = json.JSONEncoder(default=str)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=(
            "The mirror: a SQLite file, or a postgresql://user@host/db URL for a mirror "
            "shared by a team (env STRIPECTL_DB; default ./stripectl.db)."
        ),
        show_default=False,
    ),
]
SchemaOpt = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="PostgreSQL schema holding the mirror's tables (env STRIPECTL_SCHEMA; default stripectl).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]

# A reader that stopped early (`| head`): the status of a process killed by
# SIGPIPE, which is what a shell pipeline expects.
SIGPIPE_EXIT = 128 + int(signal.SIGPIPE)

def _click_suggests_commands() -> bool:
    import click.exceptions

    return hasattr(click.exceptions, "NoSuchCommand")


# click 8.5+ suggests a close command name itself ("Did you mean 'x'?"); typer
# then appended its own suggestion to the same message, printing it twice.
SUGGEST_COMMANDS = not _click_suggests_commands()

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 findings; 2 usage; 3 config/auth; 4 Stripe API; 5 network; 6 local store; 70 bug."
)


@dataclass
class Globals:
    db: str | None = None
    json: bool = False
    debug: bool = False
    schema: str | None = None


@dataclass
class Ctx:
    """Resolved per-command settings and the two output streams."""

    db: str
    json: bool
    debug: bool
    out: Console
    err: Console
    schema: str | None = None  # PostgreSQL only: where the mirror's tables live

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal

    def emit_json(self, data: Any) -> None:
        # Plain write: rich would re-wrap long lines and break the JSON. Indented
        # only for a person at a terminal: indent makes json use its slow
        # pure-Python encoder.
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(redact(json.dumps(data, indent=indent, default=str)))
        sys.stdout.write("\n")

    def emit_json_stream(self, parts: Iterator[tuple[str, Any]]) -> None:
        """A JSON object written key by key; a list value given as an iterator is
        written item by item, and a JSONArraySpool (already redacted) copied
        as it is, so a 100k-event report never exists as one string."""
        from stripectl.json_text import JSONArraySpool  # imports tempfile: not for --help

        w = sys.stdout.write
        w("{")
        for n, (key, value) in enumerate(parts):
            w(("," if n else "") + "\n" + json.dumps(key) + ": ")
            if isinstance(value, JSONArraySpool):
                w("[")
                for block in value.blocks():
                    w(block)
                w("\n]")
            elif isinstance(value, Iterator):
                w("[")
                for i, item in enumerate(value):
                    w(("," if i else "") + "\n  " + redact(_ENCODER.encode(item)))
                w("\n]")
            else:
                w(redact(_ENCODER.encode(value)))
        w("\n}\n")

    def note(self, message: str) -> None:
        """A message for people, on stderr; never data."""
        from stripectl.printable import printable

        self.err.print(printable(redact(message)), highlight=False, markup=False)


@functools.cache
def _console_class() -> type[Console]:
    """Built on first use: importing rich.console costs ~25 ms that `--help`
    and a completion request must not pay."""
    from rich.console import Console

    class _Console(Console):
        """rich's Console ends the process with SystemExit(1) (exit 1 means
        "findings" here) when its stream is a closed pipe: raise it instead,
        for `guarded` to end with the conventional status."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return _Console


def stdout_is_gone() -> bool:
    """True when stdout is a pipe or socket whose reader has closed it."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_exit_on_closed_stdout() -> typer.Exit:
    # Point stdout at /dev/null, so the interpreter's last flush of what is
    # still buffered cannot raise again ("Exception ignored ... BrokenPipeError";
    # see "Note on SIGPIPE" in the signal module's docs).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass
    return typer.Exit(SIGPIPE_EXIT)


def run_app(app: Callable[[], Any]) -> None:
    """Run the CLI; output still buffered at exit is flushed here, where a
    reader that has gone is handled like everywhere else (not in the
    interpreter's shutdown, which prints "Exception ignored" and exits 120)."""
    try:
        app()
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            raise SystemExit(_quiet_exit_on_closed_stdout().exit_code) from None


def make_ctx(tctx: typer.Context, db: str | None, json_out: bool, debug: bool) -> Ctx:
    _Console = _console_class()
    g = tctx.find_root().obj if isinstance(tctx.find_root().obj, Globals) else Globals()
    return Ctx(
        db=resolve_db(db, g.db),
        json=json_out or g.json,
        debug=debug or g.debug,
        # Piped output is read by people later (CI logs): don't squeeze it to 80 columns.
        out=_Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200),
        err=_Console(file=sys.stderr, stderr=True, soft_wrap=True),
        schema=g.schema or os.environ.get("STRIPECTL_SCHEMA") or None,
    )


def resolve_db(after: str | None, before: str | None) -> str:
    """--db after the command, then --db before it, then STRIPECTL_DB, then ./stripectl.db."""
    return after or before or os.environ.get("STRIPECTL_DB") or DEFAULT_DB


P = ParamSpec("P")
R = TypeVar("R")


def _debug_requested(kwargs: dict[str, Any]) -> bool:
    if kwargs.get("debug"):
        return True
    ctx = click_ctx()
    root = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(root, Globals) and root.debug) or bool(os.environ.get("STRIPECTL_DEBUG"))


def click_ctx() -> Any:
    import click

    return click.get_current_context(silent=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected errors into one stderr line and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from rich.console import Console

        err = Console(file=sys.stderr, stderr=True, soft_wrap=True)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except errors.StripectlError as exc:
            if _debug_requested(kwargs):
                err.print(redact(traceback.format_exc()), markup=False, highlight=False)
            # One line each, whatever the message holds (an SDK's wrapped text).
            err.print(f"error: {_one_line(redact(exc.message))}", markup=False, highlight=False)
            if exc.hint:
                err.print(f"hint: {_one_line(redact(exc.hint))}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: committed work is kept; re-run to finish", markup=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and stdout_is_gone():
                # Not some other pipe (a socket, a worker's): our reader left.
                raise _quiet_exit_on_closed_stdout() from None
            if _debug_requested(kwargs):
                err.print(redact(traceback.format_exc()), markup=False, highlight=False)
            from stripectl.store.faults import store_fault

            fault = store_fault(exc)  # a damaged or full mirror met by any query: exit 6
            if fault is not None:
                err.print(f"error: {redact(fault.message)}", markup=False, highlight=False)
                err.print(f"hint: {redact(fault.hint or '')}", markup=False, highlight=False)
                raise typer.Exit(fault.exit_code) from None
            err.print(
                f"bug: {type(exc).__name__}: {redact(str(exc))}",
                markup=False,
                highlight=False,
            )
            err.print("hint: re-run with --debug and report it", markup=False)
            raise typer.Exit(errors.BUG) from None

    return wrapper


@contextmanager
def progress(ctx: Ctx, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; a no-op callback otherwise."""
    if not ctx.interactive or ctx.json:
        yield lambda advance: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda advance: bar.advance(task, advance)
