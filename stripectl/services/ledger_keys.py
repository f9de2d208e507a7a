"""Idempotency keys and what the ledger says about them: derived keys, the
params fingerprint, the check of a key given by hand, and the conflict
message naming which parameters differ (services/ledger.py applies them)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from stripectl.errors import IdempotencyConflict, UsageError
from stripectl.redact import redact

MAX_KEY_LENGTH = 255
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it is an HTTP header


def canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(operation: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(f"{operation}\n{canonical(params)}".encode()).hexdigest()


def derive_key(kind: str, identity: str) -> str:
    """`stripectl:<kind>:<sha256(identity)[:32]>`: same business identity, same key."""
    return f"stripectl:{kind}:{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not _KEY_CHARS.match(key):
        raise UsageError(
            f"--idempotency-key must be 1..{MAX_KEY_LENGTH} printable ASCII characters "
            "without spaces"
        )
    return key


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def param_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`amount: 1000 -> 2000`, one entry per differing leaf parameter."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for name in sorted(set(a) | set(b)):
        if a.get(name, _MISSING) != b.get(name, _MISSING):
            out.append(f"{name}: {_show(a.get(name, _MISSING))} -> {_show(b.get(name, _MISSING))}")
    return out


class _Missing:
    pass


_MISSING = _Missing()


def _show(value: Any) -> str:
    return "(absent)" if isinstance(value, _Missing) else redact(json.dumps(value, default=str))


def conflict_error(
    key: str, diffs: list[str] | None, *, identity_flags: str, remote: bool = False
) -> IdempotencyConflict:
    """One message for the local refusal and for Stripe's idempotency_error."""
    where = "by Stripe" if remote else "locally, before any request"
    if diffs:
        more = f"; and {len(diffs) - 10} more" if len(diffs) > 10 else ""
        detail = "; ".join(diffs[:10]) + more
        message = (
            f"idempotency key {key} was already used with different parameters "
            f"(refused {where}): {detail}"
        )
    else:
        message = (
            f"idempotency key {key} was already used with different parameters "
            f"(refused {where}; the original request is not in this ledger)"
        )
    return IdempotencyConflict(
        message,
        hint=(
            "re-run with the original parameters to replay it, or use a new "
            f"{identity_flags} for a different request"
        ),
        code="idempotency_error",
        http_status=400 if remote else None,
    )
