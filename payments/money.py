"""Currency exponents and display, from Babel's CLDR data (never a hard-coded x100)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision, list_currencies

KNOWN_CURRENCIES = frozenset(code.lower() for code in list_currencies())
MAX_AMOUNT = 10**12


def currency_exponent(currency_code: str) -> int:
    """2 for usd, 0 for jpy, 3 for kwd."""
    return int(get_currency_precision(currency_code.upper()))


def to_major(amount: int, currency_code: str) -> Decimal:
    return Decimal(amount).scaleb(-currency_exponent(currency_code))


def format_money(amount: int | None, currency_code: str) -> str:
    """1234 usd -> $12.34; 1234 jpy -> ¥1,234."""
    if amount is None:
        return "-"
    exponent = currency_exponent(currency_code)
    return format_currency(
        to_major(amount, currency_code),
        currency_code.upper(),
        locale="en_US",
        format="¤#,##0" + ("." + "0" * exponent if exponent else ""),
        currency_digits=False,
    )
