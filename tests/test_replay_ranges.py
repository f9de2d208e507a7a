"""Byte ranges read by workers give exactly the lines the sequential reader gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripectl.services import parallel
from stripectl.webhooks.envelope import RawLine, iter_raw
from stripectl.webhooks.inspect import Inspected


def _items_from_tasks(path: Path, paths: list[Path] | None = None) -> list[Inspected]:
    """Run the worker tasks in this process and number their lines as _Parallel does."""
    out: list[Inspected] = []
    numbering = parallel._Numbering()
    for task in parallel._tasks(paths or [path], allow_unsigned=False):
        lines = numbering.of(task)
        data = task[0](*task[1])
        out.extend(parallel._unpacked(data) if lines is None else lines.label(data))
    return out


@pytest.fixture(autouse=True)
def _worker_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        parallel,
        "_settings",
        {"secrets": ["whsec_x"], "tolerance": 300, "max_body_bytes": 1 << 20, "allow_unsigned": False},
    )


@pytest.mark.parametrize("range_bytes", [7, 64, 1000, 1 << 20])
def test_ranges_match_sequential_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, range_bytes: int
) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", range_bytes)
    path = tmp_path / "d.jsonl"
    lines = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i * 7 % 50)) for i in range(200)]
    lines[3] = b""
    lines[50] = b"   \t"
    lines[120] = b"{not json"
    path.write_bytes(b"\n".join(lines) + b"\r\n\n" + b'{"last": true}')  # no final newline
    expected = [i for i in iter_raw([path]) if isinstance(i, RawLine)]
    got = _items_from_tasks(path)
    assert [(i.source, i.body) for i in got] == [(i.source, i.data) for i in expected]
    assert len(got) == 200 - 2 + 1
    assert got[-1].source == f"{path}:202"
    assert all(i.reason == "malformed" for i in got)


def test_a_file_named_twice_is_numbered_from_1_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 32)
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(20)))
    got = _items_from_tasks(path, [path, path])
    assert [i.source for i in got] == [f"{path}:{n}" for n in range(1, 21)] * 2


def test_blank_jsonl_is_one_empty_delivery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 16)
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n   \n\t\n" * 20)
    got = _items_from_tasks(path)
    assert len(got) == 1 and got[0].reason == "empty"
    assert got[0].source == str(path)
