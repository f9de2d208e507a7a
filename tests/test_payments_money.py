"""Amounts in minor units and how they are shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripectl import money
from stripectl.errors import UsageError


@pytest.mark.parametrize(
    ("amount", "currency", "plain", "symbol"),
    [
        (1050, "usd", "10.50 USD", "$10.50"),
        (500, "jpy", "500 JPY", "¥500"),
        (5, "eur", "0.05 EUR", "€0.05"),
        (1234, "kwd", "1.234 KWD", "1.234 KWD"),
        (99999999, "krw", "99999999 KRW", "₩99999999"),
        (100, "sek", "1.00 SEK", "1.00 SEK"),
    ],
)
def test_format(amount: int, currency: str, plain: str, symbol: str) -> None:
    assert money.format_amount(amount, currency) == plain
    assert money.format_symbol(amount, currency) == symbol


@pytest.mark.parametrize("text", ["10.50", "10,5", "1.", "abc", "", "-1", "0", "100000000", "1e3"])
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        money.parse_amount(text)


def test_parse_amount_accepts_underscores() -> None:
    assert money.parse_amount("1_050") == 1050


@pytest.mark.parametrize("text", ["US", "usdd", "u$d", "12a"])
def test_currency_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        money.normalize_currency(text)


@given(st.integers(min_value=1, max_value=money.MAX_AMOUNT),
       st.sampled_from(["usd", "jpy", "kwd", "eur", "clp"]))
def test_format_round_trips(amount: int, currency: str) -> None:
    number = money.format_amount(amount, currency).split(" ")[0]
    assert int(number.replace(".", "")) == amount
    assert money.parse_amount(str(amount)) == amount
