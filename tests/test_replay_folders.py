"""In a folder, only delivery formats are read; a file named explicitly always is.

`stripectl replay-webhook examples/ --secret ...` (the root help's example)
once read README.md, the workflow YAML and every line of a .py file, and
stored 174 rejected "deliveries" forever.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, run, run_json, write_jsonl

REPO = Path(__file__).resolve().parent.parent


def _env(n: int) -> dict[str, object]:
    evt = f.event("customer.created", f.customer(f"cus_fold{n}"), id=f"evt_fold{n}", created=f.T0 + n)
    return f.envelope(evt, t=f.T0 + n)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.json").write_text(json.dumps(_env(1)))
    write_jsonl(folder / "sub" / "two.jsonl", [_env(2), _env(3)])
    (folder / "README.md").write_text("# notes\n\nnot a delivery\n")
    (folder / "make.py").write_text("print('hello')\nprint('world')\n")
    (folder / "ci.yml").write_text("name: x\n")
    (folder / "captured.txt").write_text(json.dumps(_env(4)) + "\n")
    return folder


def _stored(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return sorted(r[0] for r in conn.execute("SELECT source FROM events"))
    finally:
        conn.close()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_folder_reads_delivery_formats_only_and_says_what_it_skipped(tmp_path: Path, jobs: str) -> None:
    folder = _folder(tmp_path)
    db = tmp_path / "m.db"
    result = run("replay-webhook", str(folder), "--secret", SECRET, "--db", str(db), "--jobs", jobs, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["total"] == 3 and report["summary"]["applied"] == 3
    assert report["skipped_files"] == {
        "count": 4,
        "examples": sorted(str(folder / n) for n in ("README.md", "captured.txt", "ci.yml", "make.py")),
    }
    assert "skipped 4 files" in result.stderr and "--glob" in result.stderr
    assert _stored(db) == [str(folder / "one.json"), f"{folder}/sub/two.jsonl:1", f"{folder}/sub/two.jsonl:2"]


def test_glob_adds_file_names_to_read(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    db = tmp_path / "m.db"
    code, report = run_json(
        "replay-webhook", str(folder), "--secret", SECRET, "--db", str(db), "--glob", "*.txt"
    )
    assert code == 0 and report["summary"]["applied"] == 4
    assert report["skipped_files"]["count"] == 3
    assert str(folder / "captured.txt") in _stored(db)


def test_a_file_named_on_the_command_line_is_read_whatever_its_name(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    db = tmp_path / "m.db"
    code, report = run_json(
        "replay-webhook", str(folder / "captured.txt"), "--secret", SECRET, "--db", str(db)
    )
    assert code == 0 and report["summary"]["applied"] == 1
    assert report["skipped_files"]["count"] == 0
    # ... and a Markdown file named explicitly is read too (and rejected, as it should be).
    code, report = run_json("replay-webhook", str(folder / "README.md"), "--secret", SECRET, "--db", str(db))
    assert code == 1 and report["summary"]["rejected"] == 1


def test_the_root_help_example_reads_only_the_example_deliveries(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    result = run("replay-webhook", str(REPO / "examples"), "--secret", SECRET, "--db", str(db), "--json")
    report = json.loads(result.stdout)
    sources = _stored(db)
    assert not any(s.endswith((".md", ".py", ".yml")) or ".py:" in s or ".md:" in s for s in sources)
    assert all("/deliveries/" in s for s in sources)
    assert report["summary"]["rejected"] == 1  # tampered.json, on purpose
    assert report["skipped_files"]["count"] >= 3


def test_a_dry_run_also_skips_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    code, report = run_json(
        "replay-webhook", str(folder), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--dry-run"
    )
    assert code == 0 and report["summary"]["total"] == 3 and report["skipped_files"]["count"] == 4
