"""Secret redaction: keys and webhook secrets never leave the process in full."""

from __future__ import annotations

import re

# sk_/rk_ API keys, whsec_ webhook secrets, and PaymentIntent / SetupIntent /
# Checkout client secrets (pi_..._secret_...).
# No leading \b: a key can follow letters or digits in URL-encoded text
# ("%3Dsk_test_..."). Checkout client secrets carry their mode:
# cs_test_<id>_secret_<x>.
_SECRET = re.compile(
    r"((?:sk|rk)_(?:test|live)_|whsec_)[A-Za-z0-9_]+"
    r"|((?:pi|seti)_[A-Za-z0-9]+_secret_|cs_(?:test|live)_[A-Za-z0-9]+_secret_)[A-Za-z0-9_]+"
)


def mask(secret: str | None) -> str:
    """`sk_test_...abcd`: enough to tell keys apart, useless to an attacker."""
    if not secret:
        return "<none>"
    for prefix in ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_"):
        if secret.startswith(prefix):
            tail = secret[len(prefix) :]
            return f"{prefix}...{tail[-4:]}" if len(tail) > 8 else f"{prefix}..."
    return f"...{secret[-4:]}" if len(secret) > 8 else "..."


def _sub(m: re.Match[str]) -> str:
    return mask(m.group(0)) if m.group(1) else f"{m.group(2)}..."


# The password of a URL's userinfo (`https://user:pass@host/`): a --forward-to
# or probe URL carries it into reports and urllib's error messages.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s]*@")


def redact_url(url: str) -> str:
    """`https://user:***@host/path`: the URL without its password."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def redact(text: str) -> str:
    """Replace every secret-looking token in free text."""
    # Substring checks first (what the patterns can match must contain one of
    # them): this runs over every line of a 100k-event report.
    if "@" in text and "://" in text:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
    if "sk_" not in text and "rk_" not in text and "whsec_" not in text and "_secret_" not in text:
        return text
    return _SECRET.sub(_sub, text)
