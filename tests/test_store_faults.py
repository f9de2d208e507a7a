"""Faults outside the receiver (issue 11, section 3): a full disk after the charge,
a corrupted page, file modes, a newer schema, secrets in URLs and metadata."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.base import Request
from tests.fakes.idempotent import Fake, conn_args, ledger_rows

runner = CliRunner()
PAY = [
    "payments", "create", "--amount", "1050", "--currency", "usd", "--order-ref", "ord_full",
    "--payment-method", "pm_card_visa", "--confirm",
]


# --- a disk that fills up between the charge and the ledger commit -------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs of its own, so the test can really fill a filesystem."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    block = b"\0" * (1 << 20)
    with open(folder / "filler", "wb") as f:
        while True:
            try:
                f.write(block)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    # The last partial write may have left a few free bytes: take them too.
    with contextlib.suppress(OSError), open(folder / "filler2", "wb") as g:
        for _ in range(1 << 16):
            g.write(b"\0" * 512)
            g.flush()


def test_charge_made_but_ledger_commit_fails_prints_id_and_replay_hint(
    fake: Fake, small_disk: Path
) -> None:
    app_, url = fake
    db = small_disk / "m.db"
    def disk_full(req: Request) -> None:
        fill(small_disk)

    app_.on_execute = disk_full
    # A process of its own, as in real life: its lease dies with it.
    res = subprocess.run([sys.executable, "-m", "stripectl", *PAY, *conn_args(url, db)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 6, res.stderr
    [pi] = app_.created("pi_")
    assert pi["status"] == "succeeded"
    assert pi["id"] in res.stderr
    assert "re-run the same command" in res.stderr and "replays" in res.stderr
    assert "Traceback" not in res.stderr

    # Room again: the same command replays the same intent, no second charge.
    (small_disk / "filler").unlink()
    (small_disk / "filler2").unlink(missing_ok=True)
    app_.on_execute = None
    again = runner.invoke(app, [*PAY, *conn_args(url, db), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["id"] == pi["id"] and data["replayed"] is True
    assert len(app_.created("pi_")) == 1
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == pi["id"]


# --- a corrupted page: exit 6 from every command, never "bug" ---------------------

SECRET = "whsec_stripectl_example_0000000000000000"
EXAMPLES = str(Path(__file__).parent.parent / "examples" / "deliveries")


def corrupt(db: Path, *tables: str) -> None:
    """Overwrite the root page of each table (every page but the schema when none)."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    count = conn.execute("PRAGMA page_count").fetchone()[0]
    roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master"))
    conn.close()
    pages = [roots[t] for t in tables] if tables else list(range(2, count + 1))
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(b"\xab" * page_size)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("mirror") / "clean.db"
    res = runner.invoke(app, ["--db", str(db), "replay-webhook", EXAMPLES, "--secret", SECRET])
    assert res.exit_code == 1, res.output  # the example set holds one tampered delivery
    return db


COMMANDS = {
    "inbox export": ["inbox", "export"],
    "replay dry-run": ["replay-webhook", EXAMPLES, "--secret", SECRET, "--dry-run"],
    "replay": ["replay-webhook", EXAMPLES, "--secret", SECRET],
    "access offline": ["access", "user_dev", "--offline"],
    "reconcile history": ["reconcile", "--history"],
}
# The page the issue corrupted (the events table: what export and replay read),
# then every page but the schema (what any command reads).
CASES = [(name, ("events",)) for name in ("inbox export", "replay dry-run", "replay")] + [
    (name, ()) for name in COMMANDS
]


@pytest.mark.parametrize(("name", "pages"), CASES,
                         ids=[f"{n}-{'events' if p else 'all'}" for n, p in CASES])
def test_corrupted_mirror_is_exit_6(mirror: Path, tmp_path: Path, name: str,
                                    pages: tuple[str, ...]) -> None:
    db = tmp_path / "m.db"
    db.write_bytes(mirror.read_bytes())
    corrupt(db, *pages)
    res = runner.invoke(app, ["--db", str(db), *COMMANDS[name]])
    assert res.exit_code == 6, res.output
    assert res.stderr.startswith("error: ") and "bug" not in res.stderr
    assert "malformed" in res.stderr


# --- files that can hold customer data are owner-only ------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_inbox_export_file_is_0600_even_if_it_existed(mirror: Path, tmp_path: Path) -> None:
    fresh, existing = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    existing.write_text("stale\n")
    existing.chmod(0o644)
    for out in (fresh, existing):
        res = runner.invoke(app, ["--db", str(mirror), "inbox", "export", "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert mode(out) == 0o600
        assert out.read_text().count("\n") == 44  # every stored delivery, stale line gone


def test_reconcile_reports_are_0600(tmp_path: Path) -> None:
    from tests import factories as f
    from tests.drift_helpers import cli
    from tests.fakes.base import serve
    from tests.fakes.subscriptions import FakeSubscriptions

    fake = FakeSubscriptions([f.subscription(id="sub_mode1", customer="cus_mode1")])
    db = tmp_path / "m.db"
    out, extra = tmp_path / "drift.json", tmp_path / "drift.xml"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        fake.update("sub_mode1", status="canceled")
        res = cli(url, db, "reconcile", "--format", "json", "--output", str(out),
                  "--report", f"junit:{extra}")
    assert res.exit_code == 1, res.output
    assert json.loads(out.read_text())["drift"]
    assert mode(out) == 0o600 and mode(extra) == 0o600


def test_pre_existing_empty_mirror_becomes_0600(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    res = runner.invoke(app, ["--db", str(db), "replay-webhook", EXAMPLES, "--secret", SECRET])
    assert res.exit_code == 1, res.output
    assert mode(db) == 0o600


# --- a newer schema is refused before anything changes -----------------------------


def test_newer_schema_refused_before_switching_journal_mode(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    before = db.read_bytes()
    res = runner.invoke(app, ["--db", str(db), "inbox", "export"])
    assert res.exit_code == 6, res.output
    assert "newer than this stripectl" in res.stderr
    assert db.read_bytes() == before  # still a rollback-journal file, byte for byte
    assert not Path(f"{db}-wal").exists()


# --- secrets in URLs and in metadata ----------------------------------------------


def test_forward_to_url_credentials_are_used_and_never_printed(tmp_path: Path) -> None:
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    expected = "Basic " + base64.b64encode(b"bob:s3cret@pw").decode()
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            self.send_response(200 if seen[-1] == expected else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    base = ["--db", str(tmp_path / "m.db"), "replay-webhook", EXAMPLES, "--secret", SECRET,
            "--sign-with", SECRET, "--dry-run"]
    try:
        good = runner.invoke(app, [*base, "--json", "--forward-to",
                                   f"http://bob:s3cret%40pw@127.0.0.1:{port}/hook"])
        bad = runner.invoke(app, [*base, "--forward-to",
                                  f"http://bob:wrongpass@127.0.0.1:{port}/hook"])
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = runner.invoke(app, [*base, "--json", "--forward-to",
                               f"http://bob:downpass@127.0.0.1:{closed}/hook"])
    report = json.loads(good.stdout.splitlines()[0])
    assert seen and seen[0] == expected  # the credentials were sent as Basic auth
    for res, password in ((good, "s3cret"), (bad, "wrongpass"), (down, "downpass")):
        assert password not in res.output, res.output
    assert "bob:***@127.0.0.1" in good.stdout and "bob:***@127.0.0.1" in down.stdout
    assert "401" in bad.stdout
    assert report["url"] == f"http://bob:***@127.0.0.1:{port}/hook"
    assert report["summary"]["ok"] == report["summary"]["total"] == 43


def test_key_looking_metadata_redacted_alike_in_ledger_and_mirror(
    fake: Fake, tmp_path: Path
) -> None:
    db = tmp_path / "m.db"
    _, url = fake
    key = "sk_live_stripectl_fake_51Habcdefghijkl9876"
    res = runner.invoke(app, [*PAY, "--metadata", f"note={key}", *conn_args(url, db)])
    assert res.exit_code == 0, res.output
    [row] = ledger_rows(db)
    conn = sqlite3.connect(db)
    [(metadata,)] = conn.execute("SELECT metadata FROM payment_intents").fetchall()
    conn.close()
    ledger_note = json.loads(row["params"])["metadata"]["note"]
    mirror_note = json.loads(metadata)["note"]
    assert key not in row["params"] and key not in metadata
    assert ledger_note == mirror_note == "sk_live_...9876"
