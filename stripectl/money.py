"""Amounts in minor units, currency codes, and how people read them.

Stripe takes integer amounts in the currency's smallest unit: 1050 usd is
$10.50, but 500 jpy is ¥500 (yen has no minor unit). Parsing refuses anything
that is not a plain positive integer, so "10.50" can never become 10 or 1050
by accident.
"""

from __future__ import annotations

import re

from stripectl.errors import UsageError

# Stripe's ceiling for most currencies is 99999999 minor units (8 digits).
MAX_AMOUNT = 99_999_999

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)
# https://docs.stripe.com/currencies#three-decimal
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

_SYMBOLS = {
    "usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cny": "¥", "inr": "₹",
    "krw": "₩", "chf": "CHF ", "cad": "CA$", "aud": "A$",
}

_INT = re.compile(r"^[0-9]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_amount(text: str | int) -> int:
    """A positive integer amount in minor units, or a UsageError saying why not."""
    raw = str(text).strip().replace("_", "")
    if not _INT.match(raw):
        if re.match(r"^-?[0-9]*[.,][0-9]+$", raw) or re.match(r"^-?[0-9]+[.,]$", raw):
            raise UsageError(
                f"--amount {text!r} is not an integer: amounts are in minor units",
                hint="10.50 USD is --amount 1050; 500 JPY is --amount 500",
            )
        raise UsageError(f"--amount {text!r} is not a positive integer (minor units)")
    amount = int(raw)
    if amount <= 0:
        raise UsageError(f"--amount must be greater than 0, got {amount}")
    if amount > MAX_AMOUNT:
        raise UsageError(f"--amount {amount} is above Stripe's maximum of {MAX_AMOUNT}")
    return amount


def normalize_currency(text: str) -> str:
    """An ISO 4217 code, lowercased as Stripe wants it."""
    code = text.strip()
    if not _CURRENCY.match(code):
        raise UsageError(f"--currency {text!r} is not a three-letter ISO 4217 code (e.g. usd)")
    return code.lower()


def decimals(currency: str) -> int:
    cur = currency.lower()
    if cur in ZERO_DECIMAL:
        return 0
    if cur in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """`10.50 USD`, `500 JPY`: unambiguous, for tables and JSON."""
    places = decimals(currency)
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if places == 0:
        text = str(value)
    else:
        whole, frac = divmod(value, 10**places)
        text = f"{whole}.{frac:0{places}d}"
    return f"{sign}{text} {currency.upper()}"


def format_symbol(amount: int, currency: str) -> str:
    """`$10.50`, `¥500`; falls back to `format_amount` for other currencies."""
    symbol = _SYMBOLS.get(currency.lower())
    if symbol is None:
        return format_amount(amount, currency)
    number = format_amount(amount, currency).rsplit(" ", 1)[0]
    if number.startswith("-"):
        return f"-{symbol}{number[1:]}"
    return f"{symbol}{number}"
