"""Reading saved deliveries in every accepted format, streaming.

Formats: a file holding one envelope, a JSONL file of envelopes (or a JSON
array of them), a folder of either (recursive, sorted by path), a raw HTTP
request dump, and a bare event JSON (only with --unsigned). In a folder only
files named like deliveries are read (DELIVERY_SUFFIXES, plus --glob
patterns): a README or a script beside them is skipped, never stored as a
pile of rejected "deliveries". A file named explicitly is always read. An envelope is
`{"received_at": unix, "headers": {"Stripe-Signature": ...}, "body": "<raw>"}`.

Input that cannot be read as a delivery still yields a Delivery with `error`
set, so it is stored and reported as rejected rather than silently dropped.
Only a path that cannot be opened at all is a usage error.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, NamedTuple

from stripectl.errors import UsageError
from stripectl.webhooks import json_parse
from stripectl.webhooks.delivery import Delivery

_HTTP_METHODS = (b"POST ", b"PUT ", b"GET ", b"PATCH ")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
# What a folder is searched for: the formats stripectl itself writes (inbox
# export: .jsonl), envelopes and bare events (.json), raw HTTP dumps (.http).
DELIVERY_SUFFIXES = (".json", *_JSONL_SUFFIXES, ".http")


def source_name(path: Path) -> str:
    """`str(path)`, with the bytes of a non-UTF-8 file name as `\\xff`
    escapes: the name is stored in `events` and printed, and a
    surrogate-escaped str can be neither."""
    name = str(path)
    if name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_deliveries(paths: list[Path], *, allow_unsigned: bool = False) -> Iterator[Delivery]:
    for item in iter_raw(paths, allow_unsigned=allow_unsigned):
        yield delivery_from_line(item, allow_unsigned) if isinstance(item, RawLine) else item


def iter_raw(paths: list[Path], *, allow_unsigned: bool = False) -> Iterator[Delivery | RawLine]:
    """Like iter_deliveries, but JSONL lines come unparsed (see services/parallel.py)."""
    for file in iter_files(paths):
        yield from read_file(file, allow_unsigned)


@dataclass
class FileSelection:
    """The files a list of paths names: folders expanded to their delivery
    files, and the files in them that were not taken."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def select_files(paths: Sequence[Path], globs: Sequence[str] = ()) -> FileSelection:
    """Files named in `paths` are taken whatever their name; in a folder
    (recursive, sorted, no dot-files) a file is taken when its suffix is in
    DELIVERY_SUFFIXES or its name / relative path matches one of `globs`."""
    out = FileSelection()
    for path in paths:
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(path)
                if not p.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                wanted = p.suffix.lower() in DELIVERY_SUFFIXES or any(
                    fnmatch(p.name, g) or rel.match(g) for g in globs
                )
                (out.files if wanted else out.skipped).append(p)
        elif path.is_file():
            out.files.append(path)
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        else:
            raise UsageError(f"{path}: not a regular file or folder")
    return out


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """The files `paths` name, folders expanded to their delivery files (select_files)."""
    yield from select_files(paths).files


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in _JSONL_SUFFIXES


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc


def read_file(path: Path, allow_unsigned: bool) -> Iterator[Delivery | RawLine]:
    name = source_name(path)
    if is_jsonl(path):
        yield from _read_jsonl(path, allow_unsigned, raw=True)
        return
    with _open(path) as f:
        head = f.read(64)
        f.seek(0)
        if not head.strip():
            yield Delivery(source=name, body=b"", error="empty", error_detail="empty file")
            return
        if head.lstrip().startswith(_HTTP_METHODS):
            yield _from_http_dump(name, f.read())
            return
        raw = f.read()
    try:
        doc = json_parse.loads(raw)
    except UnicodeDecodeError:
        yield Delivery(source=name, body=raw, error="not_utf8", error_detail="file is not UTF-8")
        return
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            # Several JSON documents, one per line: JSONL without the suffix.
            yield from _read_jsonl(path, allow_unsigned, raw=True)
            return
        yield Delivery(
            source=name, body=raw, error="malformed", error_detail=f"invalid JSON: {exc}"
        )
        return
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        yield Delivery(source=name, body=raw, error="malformed", error_detail=f"unreadable JSON: {exc}")
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc, 1):
            yield _from_document(f"{name}[{i}]", item, None, allow_unsigned)
    else:
        yield _from_document(name, doc, raw, allow_unsigned)


class RawLine(NamedTuple):
    """One JSONL line not parsed yet: parsing can then happen in a worker.

    A NamedTuple: a frozen dataclass's __init__ cost ~1 us a line."""

    source: str
    data: bytes


def delivery_from_line(line: RawLine, allow_unsigned: bool) -> Delivery:
    try:
        doc = json_parse.loads(line.data)
    except UnicodeDecodeError:
        return Delivery(
            source=line.source, body=line.data, error="not_utf8", error_detail="line is not UTF-8"
        )
    except (ValueError, RecursionError) as exc:  # incl. JSONDecodeError, huge integers
        return Delivery(
            source=line.source,
            body=line.data,
            error="malformed",
            error_detail=f"invalid JSON: {exc}",
        )
    return _from_document(line.source, doc, line.data, allow_unsigned)


def _read_jsonl(
    path: Path, allow_unsigned: bool, raw: bool = False
) -> Iterator[Delivery | RawLine]:
    with _open(path) as f:
        seen_any = False
        for line in _lines(source_name(path), f, 1):
            seen_any = True
            yield line if raw else delivery_from_line(line, allow_unsigned)
        if not seen_any:
            yield empty_file(path)


def empty_file(path: Path) -> Delivery:
    return Delivery(source=source_name(path), body=b"", error="empty", error_detail="empty file")


def _lines(name: str, lines: Iterable[bytes], first_lineno: int) -> Iterator[RawLine]:
    for lineno, data in enumerate(lines, first_lineno):
        # Same test as `data.strip()` (ASCII whitespace) without copying the line.
        if data and not data.isspace():
            yield RawLine(f"{name}:{lineno}", data)


def jsonl_range_lines(path: Path, start: int, end: int) -> tuple[int, list[tuple[int, bytes]]]:
    """For bytes [start, end) of a JSONL file (`start` a line start): how many
    newlines they hold, and each non-blank line with its number counted from
    1 at `start` (a worker reads and counts its own range: services/parallel.py)."""
    with _open(path) as f:
        f.seek(start)
        data = f.read(end - start)
    # BytesIO splits exactly as iterating the file does (on b"\n", kept).
    lines = [
        (n, line)
        for n, line in enumerate(io.BytesIO(data), 1)
        # Same test as `line.strip()` (ASCII whitespace) without copying the line.
        if line and not line.isspace()
    ]
    return data.count(b"\n"), lines


def _from_document(source: str, doc: Any, raw: bytes | None, allow_unsigned: bool) -> Delivery:
    if not isinstance(doc, dict):
        return Delivery(
            source=source, body=raw or b"", error="malformed", error_detail="not a JSON object"
        )
    if "body" in doc:
        return _from_envelope(source, doc, raw, allow_unsigned)
    if doc.get("object") == "event" or ("type" in doc and "data" in doc):
        body = raw if raw is not None else _reencoded(doc)
        if body is None:
            return _too_deep(source)
        if not allow_unsigned:
            return Delivery(
                source=source,
                body=body,
                error="unsigned",
                error_detail="a bare event has no signature: pass --unsigned to accept it unverified",
            )
        return Delivery(source=source, body=body.strip(), unsigned=True)
    return Delivery(
        source=source,
        body=raw or b"",
        error="malformed",
        error_detail="neither an envelope (no 'body') nor an event",
    )


def _from_envelope(
    source: str, doc: dict[str, Any], raw: bytes | None, allow_unsigned: bool = False
) -> Delivery:
    body = doc.get("body")
    headers = doc.get("headers") or {}
    received = doc.get("received_at")
    if not isinstance(headers, dict):
        headers = {}
    if any(isinstance(v, dict | list) for v in headers.values()):
        # A header is one value; str() of a nested one could also recurse
        # past Python's limit.
        return Delivery(
            source=source,
            body=raw or b"",
            error="malformed",
            error_detail="envelope header values must be strings",
        )
    headers = {str(k): str(v) for k, v in headers.items()}
    received_at = None
    if received is not None:
        if (
            isinstance(received, bool)
            or not isinstance(received, int | float)
            or not math.isfinite(received)
            or not 0 <= received < 2**40
        ):
            return Delivery(
                source=source,
                body=raw or b"",
                headers=headers,
                error="malformed",
                error_detail=f"received_at must be unix seconds, got {_brief(received)!r}",
            )
        received_at = int(received)
    if not isinstance(body, str):
        stored = _reencoded(body) if body is not None else b""
        if stored is None:
            return _too_deep(source, raw, headers, received_at)
        return Delivery(
            source=source,
            body=stored,
            headers=headers,
            received_at=received_at,
            error="malformed",
            error_detail="envelope body must be the raw request body as a string",
        )
    try:
        data = body.encode("utf-8")
        text: str | None = body
    except UnicodeEncodeError:
        # Lone surrogates: a non-UTF-8 body saved with surrogateescape.
        try:
            data = body.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            # A surrogate that stands for no byte ("\ud800"): these are not the
            # bytes of any request. Stored as close as they can be, rejected.
            return Delivery(
                source=source,
                body=body.encode("utf-8", "surrogatepass"),
                headers=headers,
                received_at=received_at,
                error="malformed",
                error_detail="envelope body holds a lone surrogate that encodes no byte",
            )
        text = None
    # An envelope with no Stripe-Signature at all (an event `inbox export` got
    # from the Events API, a capture that arrived unsigned) is, with
    # --unsigned, what a bare event is: accepted and marked unverified. A
    # signature that is there is always checked.
    unsigned = allow_unsigned and not any(k.lower() == "stripe-signature" for k in headers)
    return Delivery(
        source=source, body=data, headers=headers, received_at=received_at, text=text, unsigned=unsigned
    )


REENCODE_DEPTH = 64  # json.dumps recurses; a fixed bound keeps outcomes stack-independent


def _reencoded(value: Any) -> bytes | None:
    """A parsed value as JSON bytes to store, or None when it nests deeper
    than REENCODE_DEPTH (orjson parses up to 1,024 levels)."""
    if json_parse.too_deep(value, REENCODE_DEPTH):
        return None
    return json.dumps(value).encode()


def _too_deep(
    source: str,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    received_at: int | None = None,
) -> Delivery:
    return Delivery(
        source=source,
        body=raw or b"",
        headers=headers or {},
        received_at=received_at,
        error="malformed",
        error_detail=f"nested deeper than {REENCODE_DEPTH} levels",
    )


def _brief(value: Any) -> str:
    """A bad value for a message: containers by type only (str() of a deeply
    nested one would itself fail)."""
    if isinstance(value, dict | list):
        return type(value).__name__
    return str(value)[:40]


def _from_http_dump(source: str, raw: bytes) -> Delivery:
    sep = raw.find(b"\r\n\r\n")
    width = 4
    if sep < 0:
        sep, width = raw.find(b"\n\n"), 2
    if sep < 0:
        return Delivery(
            source=source,
            body=raw,
            error="malformed",
            error_detail="HTTP dump without a blank line",
        )
    head, body = raw[:sep], raw[sep + width :]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, colon, value = line.partition(b":")
        if colon:
            headers[key.decode("latin-1").strip()] = value.decode("latin-1").strip()
    length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    if length is not None and length.isascii() and length.isdigit():  # not "²"
        n = int(length)
        if len(body) < n:
            return Delivery(
                source=source,
                body=body,
                headers=headers,
                error="truncated",
                error_detail=f"body has {len(body)} of {n} bytes",
            )
        body = body[:n]
    return Delivery(source=source, body=body, headers=headers)


def envelope_of(delivery: Delivery) -> dict[str, Any]:
    """The DESIGN.md envelope; a non-UTF-8 body round-trips via surrogateescape."""
    return {
        "received_at": delivery.received_at,
        "headers": dict(delivery.headers),
        "body": delivery.body.decode("utf-8", "surrogateescape"),
    }


def envelope_line(delivery: Delivery) -> str:
    return json.dumps(envelope_of(delivery), separators=(",", ":"))
