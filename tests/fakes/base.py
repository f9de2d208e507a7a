"""A tiny threaded HTTP server on 127.0.0.1 that speaks Stripe's wire format.

Subclass `FakeStripe` and implement `route()`. Every request is logged in
`requests` so tests can count HTTP calls. Start with `with serve(app) as url:`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Response:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Fault injection: close the socket without answering (after doing the work).
    drop_connection: bool = False
    # gzip the body when the request accepts it (Stripe compresses what is asked for).
    compress: bool = False


def _set_nested(target: dict[str, Any], key: str, value: str) -> None:
    # metadata[k]=v, line_items[0][price]=p, expand[]=x
    parts = key.replace("]", "").split("[")
    cur: Any = target
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = None if last else parts[i + 1]
        if isinstance(cur, list):
            if part == "":
                if last:
                    cur.append(value)
                    return
                cur.append({} if not (nxt == "" or (nxt or "").isdigit()) else [])
                cur = cur[-1]
                continue
            idx = int(part)
            while len(cur) <= idx:
                cur.append(None)
            if last:
                cur[idx] = value
                return
            if cur[idx] is None:
                cur[idx] = [] if (nxt == "" or (nxt or "").isdigit()) else {}
            cur = cur[idx]
        else:
            if last:
                cur[part] = value
                return
            if part not in cur:
                cur[part] = [] if (nxt == "" or (nxt or "").isdigit()) else {}
            cur = cur[part]


def parse_form(raw: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        _set_nested(out, key, value)
    return out


def error(status: int, message: str, type_: str = "invalid_request_error", **extra: Any) -> Response:
    return Response(status, {"error": {"type": type_, "message": message, **extra}})


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    def route(self, req: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and r.path.startswith(path_prefix)
        )


def _handler(app: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _do(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            req = Request(
                method=self.command,
                path=split.path,
                query=parse_form(split.query),
                form=parse_form(raw),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            with app.lock:
                app.requests.append(req)
            resp = app.route(req)
            if resp.drop_connection:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            payload = json.dumps(resp.body).encode()
            gzipped = resp.compress and "gzip" in req.headers.get("accept-encoding", "")
            if gzipped:
                payload = gzip.compress(payload)
            self.send_response(resp.status)
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_fake_{len(app.requests)}")
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _do

    return Handler


@contextmanager
def serve(app: FakeStripe) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(app))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
