"""`stripe`, imported once, without the SDK's async HTTP client libraries.

stripe-python picks its async HTTP client when it is first imported: it
imports httpx and anyio, or else aiohttp, whichever is installed. stripectl
installs aiohttp (for its receiver), and that import cost ~0.25 s of the
~0.45 s `import stripe` took (`python -X importtime`), on every command
that talks to Stripe. stripectl never calls the SDK's async methods, so
while `stripe` is first imported here these modules read as absent
(`sys.modules[name] = None`, Python's documented way to make an import
raise ImportError) unless something imported them already; the marks are
removed right after, so `import aiohttp` works as ever (the receiver's).
The SDK then holds its own "no async client" stand-in, which raises if
ever used. Every gateway module takes `stripe` from here.
"""

import sys

_ASYNC_ONLY = ("httpx", "anyio", "aiohttp")


def _import_sync_only() -> None:
    if "stripe" in sys.modules:
        return
    marked = [name for name in _ASYNC_ONLY if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import stripe  # noqa: F401
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


_import_sync_only()

import stripe  # noqa: E402
import stripe.params  # noqa: E402

__all__ = ["stripe"]
