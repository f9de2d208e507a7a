"""Posting signed deliveries to a listener over real loopback sockets."""

from __future__ import annotations

import http.client
import os
import time
from typing import Any
from urllib.parse import urlsplit

from tests import factories as f

SECRET = f.EXAMPLE_SECRET
PATH = "/webhooks/stripe"


def customer_event(n: int | str, created: int | None = None) -> dict[str, Any]:
    return f.event(
        "customer.created",
        f.customer(f"cus_l{n}"),
        id=f"evt_l{n}",
        created=created if created is not None else f.T0 + 1,
    )


def signed(
    event: dict[str, Any], *, secret: str = SECRET, t: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery as Stripe sends it now: fresh signature over the compact body."""
    body = f.body_of(event)
    stamp = int(time.time()) if t is None else t
    return body.encode(), {
        "Stripe-Signature": f.sign(body, secret, stamp),
        "Content-Type": "application/json",
    }


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 20) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def rss_peak_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (the writer), summed
    (Linux /proc: VmHWM), in MB."""
    total = 0.0
    for p in process_tree(pid):
        with open(f"/proc/{p}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total


def raw_head(length: int, headers: dict[str, str] | None = None, path: str = PATH) -> bytes:
    """A request head as a client would send it before its body."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (head + "\r\n").encode()


def read_answer(sock: Any, limit: int = 65536) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    chunks: list[bytes] = []
    try:
        while True:
            data = sock.recv(limit)
            if not data:
                break
            chunks.append(data)
    except OSError:
        pass
    return b"".join(chunks)


def process_tree(pid: int) -> list[int]:
    """pid and its child processes (Linux /proc): the listener and its writer."""
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out
