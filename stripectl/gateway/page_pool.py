"""List pages parsed, and made into what the caller keeps, in helper processes.

Why: a page of 100 subscriptions costs ~10 ms of CPU in one process: the
orjson parse (~2.7 ms), the mirror rows built from it (~2.5 ms), freeing the
parsed objects, the HTTP and the SQLite writes. All of it holds the one GIL,
so at 100 requests/s the CPU, not Stripe's limit, set the pace: a sync of
100,000 subscriptions took 15-17 s against a floor of 10 s (bench/listing.py,
1.5-1.7x). Here the parse and the transform (sync's and reconcile's
`subscription_row`) run in a helper process with its own GIL; the listing
process keeps the HTTP, the limiter, the schedule and the writes, and gets
back rows a tenth of the page's size.

- A helper is `python -m stripectl.gateway.page_pool module:function`: a
  page's body in on its stdin, the pickled digest out on its stdout, one
  page at a time. Not `concurrent.futures.ProcessPoolExecutor`: its queue
  threads cost the listing process ~1 ms of CPU a page, its spawn imports
  the whole CLI again, and its workers outlive a killed parent; a helper
  here stops at the end of its stdin, which is the parent's death too.
- Small listings never start one: the first `START_AFTER` objects are
  parsed in the calling thread, and pages go on being parsed there until a
  helper says it is ready (its imports take ~0.2 s).
- A helper runs exactly the code a thread would (`digest`). If it dies, the
  page is parsed here and so is the rest of the listing: nothing is lost,
  only the speed. If the transform raises, the page is digested here again,
  so the error is raised here, with its traceback.
- No helper on a machine with one CPU: there it would only add copying.
  Helpers ignore Ctrl-C: the listing process handles it and closes them.

This module imports neither stripe nor the rest of the gateway: it is what
a helper imports.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import orjson

START_AFTER = 1000  # objects parsed in-process before a helper is started (10 full pages)
MAX_HELPERS = 2  # ~5 ms of helper CPU a page: one keeps up with 100 req/s
_PIPE_BYTES = 1 << 20  # a page's body in one write (Linux; 64 KB pipes otherwise)
_RAISED = object()  # a helper's answer: the transform raised (digest again here to see it)

Transform = Callable[[dict[str, Any]], Any]
PATH = "<path>"  # in a digest's reason: where the caller puts the request's path
# (keys, items, has_more) of a page, or the reason its body is not a list page
Digested = tuple[list[tuple[Any, Any]], list[Any], bool] | str


class BodyError(ValueError):
    """A 2xx body that is not JSON at all."""


def parse_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # input only stdlib accepts (NaN, huge numbers): what the SDK parsed
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise BodyError(str(exc)) from None


def digest(body: bytes, transform: Transform | None) -> Digested:
    """A list page's body -> ((id, created) per object, transform(object) per
    object, has_more). Runs in the helper or, the same, in the caller."""
    try:
        doc = parse_body(body)
    except BodyError as exc:
        return f"invalid response body from Stripe: {PATH} ({exc})"
    return digest_doc(doc, transform)


def digest_doc(doc: Any, transform: Transform | None) -> Digested:
    """`digest` of a body already parsed."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return f"unexpected list response from Stripe: {PATH} without a data list"
    if not all(isinstance(o, dict) for o in data):
        return f"unexpected list response from Stripe: {PATH} with an item that is not an object"
    keys = [(o.get("id"), o.get("created")) for o in data]
    items = data if transform is None else [transform(o) for o in data]
    return keys, items, bool(doc.get("has_more"))


def helpers_for_this_machine() -> int:
    """Helper processes worth starting: one core stays with the listing."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(MAX_HELPERS, cpus - 1))


def transform_name(transform: Transform | None) -> str | None:
    """"module:qualname" a helper can import, or None (a lambda, a closure)."""
    if transform is None:
        return None
    module, qualname = getattr(transform, "__module__", None), getattr(transform, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def _resolve(name: str) -> Transform:
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _send(out: IO[bytes], data: bytes) -> None:
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)
    out.flush()


def _receive(inp: IO[bytes]) -> bytes | None:
    head = inp.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    data = inp.read(size)
    return data if len(data) == size else None


class _Helper:
    """One helper process: a body in on stdin, its pickled digest out on stdout."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stripectl.gateway.page_pool", name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        try:
            import fcntl

            fcntl.fcntl(self.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except (ImportError, AttributeError, OSError):
            pass  # a smaller pipe only means more writes

    def wait_ready(self) -> bool:
        return _receive(self.stdout) == b"ready"

    def digest(self, body: bytes) -> Digested | object | None:
        """The page's digest; None: the helper is gone; _RAISED: the transform raised."""
        try:
            _send(self.stdin, body)
            data = _receive(self.stdout)
        except (OSError, ValueError):  # a broken pipe, a closed file
            return None
        if data is None:
            return None
        kind, result = pickle.loads(data)
        return result if kind == "ok" else _RAISED

    def stop(self) -> None:
        for f in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                f.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def exit_text(self) -> str:
        code = self.proc.poll()
        return "still running" if code is None else f"exit code {code}"


class PageDigester:
    """`digest` for the pages of one listing, in helpers once it pays off.

    Thread-safe: every listing thread calls it; each helper digests one page
    at a time, and a thread waits (without the GIL) for a free helper.
    `close()` stops the helpers."""

    def __init__(self, transform: Transform | None, *, helpers: int | None = None,
                 start_after: int = START_AFTER) -> None:
        self.transform = transform
        self.name = transform_name(transform)
        self.helpers = helpers_for_this_machine() if helpers is None else helpers
        if self.name is None:
            self.helpers = 0
        self.start_after = start_after
        self.objects = 0  # digested here, so far
        self.in_helper = 0  # pages digested by a helper
        self.helper_failed: str | None = None  # why the helpers stopped being used
        self._started: list[_Helper] = []
        self._idle: queue.SimpleQueue[_Helper | None] = queue.SimpleQueue()
        self._live = 0  # helpers ready and not failed
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, body: bytes) -> Digested:
        if self._use_helpers():
            helper = self._idle.get()
            if helper is not None:
                result = helper.digest(body)
                if result is None:
                    self._lost(helper, was_live=True)
                else:
                    self._idle.put(helper)
                    if result is not _RAISED:
                        with self._lock:
                            self.in_helper += 1
                        return result  # type: ignore[return-value]
            else:
                self._idle.put(None)  # pass the "none left" on to the next waiter
        # Here: a small listing, helpers still starting, or none left. A
        # transform that raised in a helper raises here too, with its traceback.
        result = digest(body, self.transform)
        if not isinstance(result, str):
            with self._lock:
                self.objects += len(result[0])
        return result

    def _use_helpers(self) -> bool:
        with self._lock:
            if self.helpers <= 0 or self._closed or self.helper_failed is not None:
                return False
            if not self._started and self.objects >= self.start_after:
                self._start()
            return self._live > 0

    def _start(self) -> None:
        assert self.name is not None
        for _ in range(self.helpers):
            try:
                helper = _Helper(self.name)
            except OSError as exc:
                self.helper_failed = f"helper process did not start ({exc})"
                return
            self._started.append(helper)
            threading.Thread(target=self._await, args=(helper,), daemon=True,
                             name="stripectl-helper-start").start()

    def _await(self, helper: _Helper) -> None:
        # Imports take ~0.2 s; pages go on being parsed here meanwhile.
        if helper.wait_ready():
            with self._lock:
                self._live += 1
            self._idle.put(helper)
        else:
            self._lost(helper, was_live=False)

    def _lost(self, helper: _Helper, *, was_live: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._live -= int(was_live)
            if self.helper_failed is None:
                self.helper_failed = f"helper process stopped ({helper.exit_text()})"
            none_left = self._live == 0
        helper.stop()
        if none_left:
            self._idle.put(None)  # wakes any thread waiting for a helper

    def close(self) -> None:
        with self._lock:
            self._closed = True
            started, self._started = self._started, []
        for helper in started:
            helper.stop()
        self._idle.put(None)


def _serve(name: str) -> None:
    """The helper's loop: a body in, ("ok", digest) or ("raised", text) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the listing process handles Ctrl-C
    # A page is ~5,000 dicts and lists, none in a cycle, all freed with the
    # page: the cyclic GC would only walk them (see gateway/windows.py).
    gc.set_threshold(50_000, 10, 10)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    transform = _resolve(name)
    _send(out, b"ready")
    while (body := _receive(inp)) is not None:  # None: the listing process closed the pipe
        try:
            answer: tuple[str, Any] = ("ok", digest(body, transform))
        except Exception as exc:  # told to the caller, who digests again (and raises)
            answer = ("raised", f"{type(exc).__name__}: {exc}")
        _send(out, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _serve(sys.argv[1])
