"""One row model -> rich table | JSON | JSONL | Markdown | JUnit XML.

A `Rows` holds plain dict rows (what JSON shows, unchanged) and the columns a
person sees (with optional per-cell formatting). Every text format escapes
for its own syntax and redacts secret-looking tokens; JUnit goes through
xml.etree so attribute and text escaping is the library's, not ours.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stripectl.printable import printable
from stripectl.redact import redact

if TYPE_CHECKING:
    from rich.table import Table

Formatter = Callable[[Any, dict[str, Any]], str]
FORMATS = ("table", "json", "jsonl", "markdown", "junit")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Formatter | None = None  # (value, row) -> display text


@dataclass
class Rows:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    key: str = "rows"  # the JSON key holding the rows
    extra: dict[str, Any] = field(default_factory=dict)  # more top-level JSON keys

    def display(self, row: dict[str, Any], col: Column) -> str:
        value = row.get(col.key)
        return redact(col.fmt(value, row) if col.fmt else cell(value))


def cell(value: Any) -> str:
    """Compact, stable text for one value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def ts(value: Any) -> str:
    """Unix seconds as `2026-11-01T00:00:00Z`; anything else as `cell`."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):  # past year 9999
            pass
    return cell(value)


# ---- JSON / JSONL -------------------------------------------------------


def to_json(rows: Rows) -> dict[str, Any]:
    return {"summary": rows.summary, rows.key: rows.rows, **rows.extra}


def to_jsonl(rows: Rows) -> str:
    return "".join(
        redact(json.dumps(r, sort_keys=False, default=str)) + "\n" for r in rows.rows
    )


def json_text(rows: Rows) -> str:
    return redact(json.dumps(to_json(rows), indent=2, default=str)) + "\n"


# ---- rich ---------------------------------------------------------------


def rich_table(rows: Rows) -> Table:
    from rich.table import Table
    from rich.text import Text

    from stripectl.style import style_for

    table = Table(title=rows.title, title_justify="left")
    for col in rows.columns:
        table.add_column(col.title, overflow="fold")
    for row in rows.rows:
        # Text(), not str: cell values must never be read as rich markup.
        # Outcome words (applied, denied, stale...) coloured: stripectl/style.py.
        cells = (printable(rows.display(row, c)) for c in rows.columns)
        table.add_row(*(Text(v, style=style_for(v)) for v in cells))
    return table


# ---- Markdown ------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~!])")


def md_escape(text: str) -> str:
    """Text safe inside a GitHub-flavoured Markdown table cell."""
    text = html.escape(text, quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"\r\n|\r|\n", "<br>", text)


def to_markdown(rows: Rows, *, heading: str | None = None, intro: Iterable[str] = (),
                max_rows: int = 200, empty: str = "Nothing to report.") -> str:
    """A heading, intro lines, and a table (capped: step summaries have a size limit)."""
    out = [f"## {md_escape(heading or rows.title)}", ""]
    out.extend(f"{md_escape(line)}  " for line in intro)
    if out[-1] != "":
        out.append("")
    if not rows.rows:
        out.append(md_escape(empty))
        return "\n".join(out) + "\n"
    out.append("| " + " | ".join(md_escape(c.title) for c in rows.columns) + " |")
    out.append("|" + "|".join("---" for _ in rows.columns) + "|")
    for row in rows.rows[:max_rows]:
        out.append("| " + " | ".join(md_escape(rows.display(row, c)) for c in rows.columns) + " |")
    if len(rows.rows) > max_rows:
        out.append("")
        out.append(f"... and {len(rows.rows) - max_rows} more (see the JSON or JUnit report)")
    return "\n".join(out) + "\n"


# ---- JUnit XML -------------------------------------------------------------

# XML 1.0 forbids most control characters even escaped; replace them.
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _XML_BAD.sub("\ufffd", redact(text))


def to_junit(
    rows: Rows,
    *,
    suite: str,
    case_key: str,
    message: Callable[[list[dict[str, Any]]], str],
    passed: Iterable[str] = (),
    skipped: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> str:
    """One <testcase> per distinct `case_key`: rows are failures, `passed` pass,
    `skipped` (name -> reason) are skipped."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows.rows:
        groups.setdefault(str(row.get(case_key)), []).append(row)
    skipped = skipped or {}
    passed = [p for p in passed if p not in groups and p not in skipped]
    root = ET.Element("testsuites", name=_xml(suite))
    el = ET.SubElement(root, "testsuite", {
        "name": _xml(suite),
        "tests": str(len(groups) + len(passed) + len(skipped)),
        "failures": str(len(groups)),
        "errors": "0",
        "skipped": str(len(skipped)),
        "time": "0",
    })
    if timestamp is not None:
        el.set("timestamp", datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    for name, group in groups.items():
        case = ET.SubElement(el, "testcase", classname=_xml(suite), name=_xml(name), time="0")
        failure = ET.SubElement(case, "failure", message=_xml(message(group)), type="drift")
        failure.text = _xml("\n".join(
            "; ".join(f"{c.title}: {rows.display(r, c)}" for c in rows.columns) for r in group
        ))
    for name in passed:
        ET.SubElement(el, "testcase", classname=_xml(suite), name=_xml(name), time="0")
    for name, reason in skipped.items():
        case = ET.SubElement(el, "testcase", classname=_xml(suite), name=_xml(name), time="0")
        ET.SubElement(case, "skipped", message=_xml(reason))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render(
    rows: Rows,
    fmt: str,
    *,
    markdown: dict[str, Any] | None = None,
    junit: dict[str, Any] | None = None,
) -> str:
    """Text output for every format except `table` (which needs a console)."""
    if fmt == "json":
        return json_text(rows)
    if fmt == "jsonl":
        return to_jsonl(rows)
    if fmt == "markdown":
        return to_markdown(rows, **(markdown or {}))
    if fmt == "junit":
        if junit is None:
            raise ValueError("junit output needs suite, case_key and message")
        return to_junit(rows, **junit)
    raise ValueError(f"unknown format {fmt!r}")
