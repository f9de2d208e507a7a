"""The idempotency-key ledger: the rules that keep a re-run from charging twice.

Every money-moving POST goes through `claim()` before it is sent:

* the row (key, operation, params fingerprint, state `pending`) is COMMITTED
  before the request leaves, so a crash at any later point leaves a trace and
  the re-run sends the same key;
* the same key with other parameters is refused locally, naming what differs;
* the row carries a lease (host:pid:nonce + expiry): a second invocation that
  finds a fresh lease held by a live process waits for it, then sends the same
  key (Stripe replays) instead of racing it (Stripe would answer 409). Where
  the store can hold a lease for the life of a connection (PostgreSQL's
  session locks, `Store.try_lease`), that is the lease: a holder on any
  machine whose connection is gone has lost it at once, whatever the row says;
* a key first sent more than 24 h ago may have been pruned by Stripe, so
  re-sending it could create a second object: that needs `allow_stale_key`.

`settle_*()` records the answer and releases the lease.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripectl.errors import (
    CardDeclined,
    ConfigError,
    IdempotencyConflict,
    StripeAPIError,
    StripectlError,
    UsageError,
)
from stripectl.redact import redact

# Re-exported: callers use ledger.derive_key, ledger.check_key, ...
from stripectl.services.ledger_keys import MAX_KEY_LENGTH as MAX_KEY_LENGTH
from stripectl.services.ledger_keys import canonical as canonical
from stripectl.services.ledger_keys import check_key as check_key
from stripectl.services.ledger_keys import conflict_error as conflict_error
from stripectl.services.ledger_keys import derive_key as derive_key
from stripectl.services.ledger_keys import fingerprint as fingerprint
from stripectl.services.ledger_keys import param_diff as param_diff
from stripectl.store import Store
from stripectl.store import ledger as table

STALE_AFTER = 24 * 3600  # Stripe keeps keys at least this long

Clock = Callable[[], float]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class LedgerOptions:
    allow_stale_key: bool = False
    lease_seconds: int = 120  # longer than the slowest request incl. SDK retries
    wait_seconds: float | None = None  # how long to wait for another holder; None = a lease
    poll_seconds: float = 0.25


@dataclass(frozen=True)
class Claim:
    key: str
    operation: str
    owner: str
    attempt: int  # 1 on first use of the key
    sent_at: int
    previous: dict[str, Any] | None  # the row as it was before this claim
    waited: float = 0.0


def lease_seconds(timeout: float, retries: int) -> int:
    """Worst case of one SDK call: every try times out, plus backoff (<= 5 s each)."""
    return int(timeout * (retries + 1) + 5 * retries + 15)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _holder_alive(owner: str) -> bool:
    """False only when we can tell the holder died (same host, no such pid)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe_holder(owner: str) -> str:
    if not owner:
        return "a connection that holds its lease"
    host, _, rest = owner.partition(":")
    return f"pid {rest.partition(':')[0]} on {host}"


def _state_words(row: dict[str, Any]) -> str:
    if row["state"] == "succeeded":
        return f"the ledger says it succeeded as {row['object_id']}"
    if row["state"] == "failed":
        return f"the ledger says it failed: {row['error'] or 'unknown error'}"
    return "its outcome is unknown (the last attempt got no answer)"


def _refuse_stale(row: dict[str, Any], now: int, options: LedgerOptions) -> None:
    first = row["first_sent_at"] or row["created_at"] or now
    age = now - int(first)
    if age < STALE_AFTER or options.allow_stale_key:
        return
    raise UsageError(
        f"idempotency key {row['key']} was first sent {age // 3600} h ago: Stripe prunes keys "
        f"after 24 h, so sending it again may create a second object instead of replaying "
        f"({_state_words(row)})",
        hint=(
            "check the object in the Dashboard first; pass --allow-stale-key to send the key "
            "again anyway"
        ),
    )


def claim(
    store: Store,
    *,
    key: str,
    operation: str,
    params: dict[str, Any],
    options: LedgerOptions,
    identity_flags: str,
    clock: Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: Notify | None = None,
    guard: Callable[[], None] | None = None,
) -> Claim:
    """Take the key for one send, committed before the request goes out.

    `guard`, if given, runs inside the claim's write transaction just before
    the key is taken, and refuses by raising: a check against other ledger
    rows that two invocations at once cannot both pass (refunds create)."""
    clock = clock or time.time
    sleep = sleep or time.sleep
    fp = fingerprint(operation, params)
    stored_params = redact(canonical(params))
    owner = owner_id()
    started = clock()
    limit = options.wait_seconds if options.wait_seconds is not None else options.lease_seconds + 5
    told = False
    while True:
        now = int(clock())
        with store.transaction():
            row = table.get(store, key)
            if row is not None and (row["operation"] != operation or row["fingerprint"] != fp):
                old = json.loads(row["params"] or "{}")
                diffs = param_diff(old, params)
                if row["operation"] != operation:
                    diffs.insert(0, f"operation: {row['operation']} -> {operation}")
                raise conflict_error(key, diffs, identity_flags=identity_flags)
            held = store.try_lease(key)
            try:
                taken = _take(
                    store, row, held, key, operation, fp, stored_params, owner, now, options, guard
                )
            except BaseException:
                if held:
                    store.release_lease(key)
                raise
            if taken is not None:
                attempt, previous = taken
                return Claim(key, operation, owner, attempt, now, previous, clock() - started)
            if held:
                store.release_lease(key)
            holder = row["lease_owner"] if row is not None and row["lease_owner"] else ""
        if clock() - started >= limit:
            raise StripeAPIError(
                f"idempotency key {key} is being sent right now by another stripectl "
                f"({_describe_holder(holder)}); refusing to race it",
                hint="wait for it to finish and re-run: the same key then replays its result",
                code="idempotency_key_in_use",
            )
        if notify is not None and not told:
            notify(f"waiting for {_describe_holder(holder)}, which is sending key {key} ...")
            told = True
        sleep(options.poll_seconds)


def _take(
    store: Store,
    row: dict[str, Any] | None,
    held: bool | None,
    key: str,
    operation: str,
    fp: str,
    stored_params: str,
    owner: str,
    now: int,
    options: LedgerOptions,
    guard: Callable[[], None] | None = None,
) -> tuple[int, dict[str, Any] | None] | None:
    """Write the claim unless another live invocation holds the key; returns
    (attempt, the row before) or None (busy). `held` is `Store.try_lease`'s
    answer: where the store can tell, a live connection holding the key is
    the one fact that counts; otherwise the row's lease and the holder's pid."""
    if held is None:
        holder = row["lease_owner"] if row is not None else None
        fresh = row is not None and int(row["lease_expires_at"] or 0) > now
        busy = bool(holder) and fresh and _holder_alive(str(holder))
    else:
        busy = not held
    if busy:
        return None
    lease = {"lease_owner": owner, "lease_expires_at": now + options.lease_seconds}
    if row is None:
        if guard is not None:
            guard()
        table.insert(
            store,
            {
                "key": key,
                "operation": operation,
                "fingerprint": fp,
                "params": stored_params,
                "state": "pending",
                "attempts": 1,
                "replayed": 0,
                **lease,
                "first_sent_at": now,
                "last_sent_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        return 1, None
    _refuse_stale(row, now, options)
    if guard is not None:
        guard()
    attempt = int(row["attempts"] or 0) + 1
    table.update(
        store, key, {**lease, "attempts": attempt, "last_sent_at": now, "updated_at": now}
    )
    return attempt, row


def _finish(
    store: Store,
    claim: Claim,
    fields: dict[str, Any],
    clock: Clock | None,
    also: Callable[[], None] | None = None,
) -> None:
    """Record the answer; `also` runs in the same transaction (the mirror write)."""
    now = int((clock or time.time)())
    with store.transaction():
        row = table.get(store, claim.key)
        if row is None:  # pragma: no cover - rows are never deleted
            return
        fields = {**fields, "updated_at": now}
        if row["lease_owner"] == claim.owner:
            fields.update({"lease_owner": None, "lease_expires_at": None})
        table.update(store, claim.key, fields)
        if also is not None:
            also()
    store.release_lease(claim.key)


def settle_success(
    store: Store,
    claim: Claim,
    *,
    obj: dict[str, Any],
    replayed: bool,
    clock: Clock | None = None,
    also: Callable[[], None] | None = None,
) -> None:
    fields: dict[str, Any] = {
        "state": "succeeded",
        "object_id": obj.get("id"),
        "object_status": obj.get("status"),
        "replayed": int(replayed),
        "error": None,
        "error_code": None,
        "http_status": 200,
    }
    if not replayed:
        # Stripe executed it on this attempt: its 24 h starts now.
        fields["first_sent_at"] = claim.sent_at
    _finish(store, claim, fields, clock, also)


def settles_as_failure(error: StripectlError, http_status: int | None) -> bool:
    """Definitive answers Stripe stored (or would repeat); the rest leave the row as it was."""
    if isinstance(error, IdempotencyConflict | ConfigError):
        return False
    if isinstance(error, CardDeclined):
        return True
    return http_status is not None and (http_status >= 500 or http_status in (400, 402, 404))


def settle_error(
    store: Store,
    claim: Claim,
    *,
    error: StripectlError,
    http_status: int | None,
    code: str | None,
    replayed: bool,
    obj: dict[str, Any] | None = None,
    clock: Clock | None = None,
    also: Callable[[], None] | None = None,
) -> None:
    fields: dict[str, Any] = {
        "error": redact(error.message)[:500],
        "error_code": getattr(error, "decline_code", None) or code,
        "http_status": http_status,
        "replayed": int(replayed),
    }
    prior = claim.previous["state"] if claim.previous else "pending"
    if settles_as_failure(error, http_status) and prior != "succeeded":
        fields["state"] = "failed"
        if obj is not None:
            fields["object_id"] = obj.get("id")
            fields["object_status"] = obj.get("status")
        if not replayed:
            fields["first_sent_at"] = claim.sent_at
    _finish(store, claim, fields, clock, also)


def release(
    store: Store, claim: Claim, *, note: str | None = None, clock: Clock | None = None
) -> None:
    """Give the lease back without an answer (interrupted, bug): the row stays as it was."""
    fields: dict[str, Any] = {}
    if note:
        fields["error"] = redact(note)[:500]
    _finish(store, claim, fields, clock)
