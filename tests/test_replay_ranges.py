"""Byte ranges read by workers give exactly the lines the sequential reader gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripectl.services import parallel
from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.envelope import RawLine, iter_raw, read_jsonl_range


def _items_from_tasks(path: Path) -> list[Delivery | RawLine]:
    out: list[Delivery | RawLine] = []
    for fn, args in parallel._tasks([path], allow_unsigned=False):
        if fn is parallel._inspect_range:
            out.extend(read_jsonl_range(*args))
        else:
            out.extend(args[0])
    return out


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
    expected = list(iter_raw([path]))
    got = _items_from_tasks(path)
    assert [(i.source, i.data) for i in got if isinstance(i, RawLine)] == [
        (i.source, i.data) for i in expected if isinstance(i, RawLine)
    ]
    assert len(got) == len(expected) == 200 - 2 + 1
    assert got[-1].source == f"{path}:202"


def test_blank_jsonl_is_one_empty_delivery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 16)
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n   \n\t\n" * 20)
    got = _items_from_tasks(path)
    assert len(got) == 1 and isinstance(got[0], Delivery) and got[0].error == "empty"
    assert got[0].source == str(path)
