"""Errors that stripectl expects, each carrying its documented exit code.

A StripectlError is printed as one line (plus an optional hint) without a
traceback; anything else is a bug (exit 70).
"""

from __future__ import annotations

OK = 0
FINDINGS = 1
USAGE = 2
CONFIG = 3
STRIPE_API = 4
NETWORK = 5
STORE = 6
BUG = 70

EXIT_CODES: dict[int, str] = {
    OK: "ok",
    FINDINGS: "findings: rejected or anomalous events, drift found, non-2xx forwards",
    USAGE: "usage: bad flags, unreadable input path",
    CONFIG: "config or auth: missing/invalid/refused key or secret",
    STRIPE_API: "Stripe API error: decline, invalid request, idempotency conflict, rate limit",
    NETWORK: "network: Stripe or a local server could not be reached",
    STORE: "local store: the mirror (SQLite file or PostgreSQL) cannot be opened, migrated or written",
    BUG: "bug in stripectl (re-run with --debug and report it)",
}


class StripectlError(Exception):
    exit_code = BUG

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(StripectlError):
    exit_code = USAGE


class ConfigError(StripectlError):
    exit_code = CONFIG


class StripeAPIError(StripectlError):
    exit_code = STRIPE_API

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        decline_code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.decline_code = decline_code
        self.http_status = http_status


class CardDeclined(StripeAPIError):
    pass


class IdempotencyConflict(StripeAPIError):
    pass


class NetworkError(StripectlError):
    exit_code = NETWORK


class StoreError(StripectlError):
    exit_code = STORE


class CommitOutcomeUnknown(StoreError):
    """COMMIT itself failed: the transaction may or may not be on disk."""
