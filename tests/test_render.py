"""stripectl.render: one row model, five formats, each escaped for its own syntax."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import StringIO
from typing import Any

from rich.console import Console

from stripectl.render import Column, Rows, cell, md_escape, printable, render, rich_table, to_junit, ts

NASTY = 'a|b <i>x</i> & "q" [bold]y[/bold] `c` *s* \x00\x1b[31m\nz'


def rows(values: list[dict[str, Any]]) -> Rows:
    return Rows(
        title="T",
        columns=[Column("id", "id"), Column("v", "value"),
                 Column("at", "at", lambda v, r: ts(v))],
        rows=values,
        summary={"n": len(values)},
        key="items",
    )


def test_cell_and_ts() -> None:
    assert cell(None) == "-" and cell(True) == "true" and cell([1, "a"]) == "1, a"
    assert cell({"a": 1, "b": None}) == "a=1, b=-"
    assert ts(1793491200) == "2026-11-01T00:00:00Z" and ts(None) == "-"


def test_json_and_jsonl_keep_raw_values_but_redact_secrets() -> None:
    r = rows([{"id": "x", "v": {"k": "sk_live_stripectl_fake_000000001"}, "at": 5}])
    data = json.loads(render(r, "json"))
    assert data["summary"] == {"n": 1} and data["items"][0]["at"] == 5
    assert "stripectl_fake_000000001" not in render(r, "json")
    line = render(r, "jsonl").splitlines()
    assert len(line) == 1 and json.loads(line[0])["id"] == "x"


def test_markdown_escapes_and_caps_rows() -> None:
    out = render(rows([{"id": f"r{i}", "v": NASTY, "at": None} for i in range(5)]), "markdown",
                 markdown={"heading": "H", "intro": ["two | parts"], "max_rows": 3})
    body = [line for line in out.splitlines() if line.startswith("| r")]
    assert len(body) == 3
    # every data row keeps exactly 3 cells: the literal pipe is escaped
    assert all(line.count(" | ") == 2 for line in body)
    assert "&lt;i&gt;" in body[0] and "<i>" not in out and "\\`c\\`" in body[0]
    assert "<br>z" in body[0]
    assert "... and 2 more" in out
    assert "two \\| parts" in out
    assert md_escape("a_b") == "a\\_b"


def test_markdown_empty() -> None:
    out = render(rows([]), "markdown", markdown={"empty": "All good."})
    assert "All good." in out and "|---" not in out


def test_junit_groups_rows_and_survives_control_characters() -> None:
    r = rows([{"id": "s1", "v": NASTY, "at": 1}, {"id": "s1", "v": "2", "at": 2},
              {"id": "s2", "v": "x", "at": None}])
    xml = to_junit(r, suite="suite<&>", case_key="id",
                   message=lambda group: f"{len(group)} findings",
                   passed=["s3", "s1"], skipped={"s4": "newer locally"}, timestamp=0)
    root = ET.fromstring(xml.split("?>", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "suite<&>"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    s1 = cases["s1"].find("failure")
    assert s1 is not None and s1.get("message") == "2 findings"
    assert "a|b <i>x</i>" in (s1.text or "") and "\x00" not in (s1.text or "")
    assert cases["s3"].find("failure") is None
    skipped = cases["s4"].find("skipped")
    assert skipped is not None and skipped.get("message") == "newer locally"


def test_rich_table_does_not_interpret_markup() -> None:
    buf = StringIO()
    Console(file=buf, width=200, color_system=None).print(
        rich_table(rows([{"id": "[bold]x[/bold]", "v": "rk_test_stripectl_fake_00000001",
                          "at": 1793491200}])))
    text = buf.getvalue()
    assert "[bold]x[/bold]" in text and "2026-11-01T00:00:00Z" in text
    assert "stripectl_fake_00000001" not in text and "rk_test_..." in text


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert printable("plain, é, tab\tand\nnewline") == "plain, é, tab\tand\nnewline"
    assert printable("evt_\x1b[31m\x07\x7f\x85") == "evt_\\x1b[31m\\x07\\x7f\\x85"
    assert printable("a\u202eb\u200fc\u2028d\ufeff") == "a\\u202eb\\u200fc\\u2028d\\ufeff"


def test_table_cells_and_the_listener_line_are_printable() -> None:
    from stripectl.cli.webhook import _format
    from stripectl.services.listener import DeliveryLine

    rows = Rows("t", [Column("id", "id")], [{"id": "evt_\x1b]0;owned\x07"}])
    out = StringIO()
    Console(file=out, width=120).print(rich_table(rows))
    assert "\x1b" not in out.getvalue() and "evt_\\x1b]0;owned\\x07" in out.getvalue()
    line = DeliveryLine(status=200, received_at=1, latency_ms=1.0, event_id="evt_\x1b[2J", type="x")
    assert "\x1b" not in _format(line, as_json=False) and "evt_\\x1b[2J" in _format(line, as_json=False)
