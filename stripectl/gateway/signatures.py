"""Webhook signature checks, delegated to stripe-python's WebhookSignature."""

from __future__ import annotations

from stripectl.gateway.sdk import stripe

# Raised by verify(): the reason is one of the rejection codes in the README.
BAD_SIGNATURE = "bad_signature"
NO_SIGNATURE = "no_signature"
GARBLED_SIGNATURE = "garbled_signature"


class SignatureRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def signature_timestamp(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header, parsed exactly as stripe-python
    parses it (split on "," then "=", key compared as is), or None.

    It must be the very timestamp the SDK verifies the HMAC with: a header
    such as `v0=x, t=<now>,t=<old>,v1=<sig>` would otherwise pass the HMAC
    with <old> and the freshness check with <now>. More than one `t` is
    refused outright.
    """
    stamps: list[str] = []
    for part in header.split(","):
        key_value = part.split("=", 2)
        if key_value[0] == "t":
            if len(key_value) > 1:
                stamps.append(key_value[1])
        elif part.strip().startswith("t="):  # " t=..." is no t for the SDK: refuse it
            return None
    if len(stamps) != 1:
        return None
    try:
        return int(stamps[0])
    except ValueError:
        return None


def verify(payload: str, header: str | None, secrets: list[str]) -> int:
    """Check `header` over the exact raw `payload` with any of `secrets`.

    Returns the signed timestamp. Age is NOT checked here (tolerance=None):
    a saved delivery is judged against the time it was received, by the caller.
    """
    if not header or not header.strip():
        raise SignatureRejected(NO_SIGNATURE, "no Stripe-Signature header")
    if not header.isascii():
        # Stripe's header is ASCII; the SDK's compare_digest raises TypeError on
        # anything else instead of refusing it.
        raise SignatureRejected(GARBLED_SIGNATURE, "Stripe-Signature is not ASCII")
    timestamp = signature_timestamp(header)
    if timestamp is None or "v1=" not in header:
        raise SignatureRejected(GARBLED_SIGNATURE, "Stripe-Signature has no t= or no v1=")
    last: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
            return timestamp
        except stripe.SignatureVerificationError as exc:
            last = exc
    raise SignatureRejected(BAD_SIGNATURE, str(last) if last else "no secret given")


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload` (tests, examples, --sign-with)."""
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp))


def construct_event_loop(deliveries: list[tuple[str, str]], secret: str) -> int:
    """The SDK's full path (verify + StripeObject build), used by bench/ as a baseline."""
    n = 0
    for body, header in deliveries:
        stripe.Webhook.construct_event(body, header, secret, tolerance=None)  # type: ignore[arg-type]
        n += 1
    return n
