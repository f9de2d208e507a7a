"""`--forward-to localhost:4242/webhooks`, as Stripe CLI users type it, means http://."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl


@pytest.fixture
def handler() -> Iterator[tuple[int, list[str]]]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_url_without_a_scheme_is_http(tmp_path: Path, handler: tuple[int, list[str]], host: str) -> None:
    port, paths = handler
    evt = f.event("customer.created", f.customer("cus_fwu"), id="evt_fwu", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    url = f"{host}:{port}/webhooks"
    result = run("replay-webhook", str(p), "--secret", SECRET, "--forward-to", url, "--json")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in json.loads(result.stdout)["results"]] == [200]
    assert paths == ["/webhooks"]
    assert f"http://{host}:{port}/webhooks" in result.stderr  # says how it read the URL


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http://", "not a url"])
def test_other_schemes_are_still_refused(tmp_path: Path, url: str) -> None:
    evt = f.event("customer.created", f.customer("cus_fwv"), id="evt_fwv", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    result = run("replay-webhook", str(p), "--forward-to", url)
    assert result.exit_code == 2 and "--forward-to must be an http(s) URL" in result.stderr
