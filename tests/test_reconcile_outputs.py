"""Reconcile's CI formats: JUnit XML, Markdown, JSONL, --output and --report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories as f
from tests.drift_helpers import cli
from tests.fakes.base import serve
from tests.fakes.subscriptions import FakeSubscriptions


def sub(n: int, **kw: Any) -> dict[str, Any]:
    kw.setdefault("metadata", {"user_id": f"user_{n}", "plan_name": "basic"})
    return f.subscription(id=f"sub_out{n:03d}", customer=f"cus_out{n:03d}", created=f.T0 + n, **kw)


@pytest.fixture
def drifted(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Mirror synced, then Stripe moved: 2 drifted subscriptions out of 5."""
    fake = FakeSubscriptions([sub(n) for n in range(5)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        fake.update("sub_out001", status="canceled")
        # Hostile metadata: markup, pipes, XML specials, a control char, a key.
        fake.update("sub_out002", metadata={
            "user_id": "u|<b>&\"x\"\x07[red]", "plan_name": "sk_test_stripectl_fake_0000"})
        yield url, db


def test_junit_one_case_per_subscription(drifted: tuple[str, Path], tmp_path: Path) -> None:
    url, db = drifted
    out = tmp_path / "drift.xml"
    result = cli(url, db, "reconcile", "--format", "junit", "--output", str(out))
    assert result.exit_code == 1
    assert result.stdout == ""
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "2", "0")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {f"sub_out{n:03d}" for n in range(5)}
    failure = cases["sub_out001"].find("failure")
    assert failure is not None
    assert "status: active -> canceled" in (failure.get("message") or "")
    assert "access: granted (active) -> denied (canceled)" in (failure.get("message") or "")
    meta = cases["sub_out002"].find("failure")
    assert meta is not None and 'u|<b>&"x"' in (meta.get("message") or "")
    assert "\x07" not in out.read_text()
    assert "stripectl_fake_0000" not in out.read_text()  # redacted
    assert cases["sub_out000"].find("failure") is None


def test_markdown_step_summary(drifted: tuple[str, Path]) -> None:
    url, db = drifted
    result = cli(url, db, "reconcile", "--format", "markdown")
    assert result.exit_code == 1
    md = result.stdout
    assert md.startswith("## Stripe subscription drift")
    assert "| subscription | kind | mirror | Stripe |" in md
    assert "| sub\\_out001 | status | active | canceled |" in md
    meta = next(line for line in md.splitlines() if "metadata" in line and "sub\\_out002" in line)
    # The pipe is escaped, HTML is inert: the row still has exactly 4 cells.
    assert meta.count(" | ") == 3 and "\\|" in meta and "&lt;b&gt;" in meta
    assert "stripectl_fake_0000" not in md
    assert "3 drift findings in 2 subscriptions" in md


def test_report_writes_extra_formats_from_one_run(drifted: tuple[str, Path], tmp_path: Path) -> None:
    url, db = drifted
    xml_path, jsonl_path = tmp_path / "d.xml", tmp_path / "d.jsonl"
    result = cli(url, db, "reconcile", "--format", "markdown",
                 "--report", f"junit:{xml_path}", "--report", f"jsonl:{jsonl_path}")
    assert result.exit_code == 1
    assert "## Stripe subscription drift" in result.stdout
    assert ET.parse(xml_path).getroot().find("testsuite") is not None
    lines = [json.loads(x) for x in jsonl_path.read_text().splitlines()]
    assert {(x["subscription"], x["kind"]) for x in lines} == {
        ("sub_out001", "status"), ("sub_out001", "access"), ("sub_out002", "metadata")}
    assert cli(url, db, "reconcile", "--report", "nope").exit_code == 2


def test_table_output_shows_findings_without_markup(drifted: tuple[str, Path]) -> None:
    url, db = drifted
    result = cli(url, db, "reconcile")
    assert result.exit_code == 1
    assert "sub_out001" in result.stdout and "canceled" in result.stdout
    assert "[red]" in result.stdout  # printed literally, not parsed as rich markup
    assert "stripectl_fake_0000" not in result.stdout


def test_no_drift_markdown_and_junit(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(n) for n in range(3)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        md = cli(url, db, "reconcile", "--format", "markdown")
        junit = cli(url, db, "reconcile", "--format", "junit")
    assert md.exit_code == 0 and "No drift" in md.stdout
    assert junit.exit_code == 0
    suite = ET.fromstring(junit.stdout.split("?>", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("tests") == "3"


def _runs(db: Path) -> list[tuple[int, int]]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, exit_code FROM reconcile_runs ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "bad",
    [
        ["--report", "junit:/nonexistent/x.xml"],
        ["--output", "/nonexistent/x.md", "--format", "markdown"],
        ["--report", "markdown:{tmp}"],  # a folder
        ["--report", "json:{tmp}/a.json", "--report", "jsonl:{tmp}/a.json"],  # the same file twice
    ],
    ids=["report-folder-missing", "output-folder-missing", "a-folder", "twice"],
)
def test_every_output_path_is_checked_before_the_first_request(
    drifted: tuple[str, Path], tmp_path: Path, bad: list[str]
) -> None:
    _url, db = drifted
    runs_before = _runs(db)
    args = [a.replace("{tmp}", str(tmp_path)) for a in bad]
    other = FakeSubscriptions([sub(0)])
    with serve(other) as other_url:
        result = cli(other_url, db, "reconcile", *args)
    assert other.list_requests() == []
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot write") or "named twice" in result.stderr
    assert _runs(db) == runs_before  # no run: nothing was listed


def test_no_request_is_made_when_an_output_cannot_be_written(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(n) for n in range(3)])
    with serve(fake) as url:
        result = cli(url, tmp_path / "m.db", "reconcile", "--report", "junit:/nonexistent/x.xml")
    assert result.exit_code == 2 and fake.list_requests() == []
    assert not (tmp_path / "m.db").exists()


def test_the_recorded_exit_code_is_the_one_the_process_returns(drifted: tuple[str, Path]) -> None:
    """/dev/full passes every check (it exists and is writable) and fails the
    write: the run was recorded as drift (1), the process ends in 2."""
    url, db = drifted
    result = cli(url, db, "reconcile", "--report", "markdown:/dev/full")
    assert result.exit_code == 2 and "cannot write /dev/full" in result.stderr
    assert _runs(db)[-1][1] == 2
    result = cli(url, db, "reconcile", "--history", "--json")
    assert json.loads(result.stdout)["runs"][0]["exit_code"] == 2
    ok = cli(url, db, "reconcile", "--format", "json")
    assert ok.exit_code == 1 and _runs(db)[-1][1] == 1


def test_json_with_another_format_is_refused(drifted: tuple[str, Path]) -> None:
    url, db = drifted
    for fmt in ("markdown", "junit", "jsonl", "table"):
        result = cli(url, db, "--json", "reconcile", "--format", fmt)
        assert result.exit_code == 2 and "--json and --format" in result.stderr, fmt
    same = cli(url, db, "reconcile", "--json", "--format", "json")
    assert same.exit_code == 1 and json.loads(same.stdout)["summary"]["drift"] >= 1
