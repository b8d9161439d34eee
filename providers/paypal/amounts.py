"""Our minor units to PayPal's decimal strings, and back.

PayPal takes an amount as `{"currency_code": "USD", "value": "19.99"}`: a decimal string
with two decimals, except for the currencies it lists as taking none (HUF, JPY, TWD), where
a decimal is an error. Our amounts are in the currency's ISO 4217 minor units
(`currency_exponent`), which for TWD are hundredths: a TWD price PayPal cannot take whole is
refused, never rounded, so the customer is never charged other than the cart total.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from payments.money import MAX_AMOUNT, currency_exponent
from providers.base import ProviderError, ProviderErrorKind

# PayPal's REST API currency codes (developer.paypal.com, "Currency codes"), lowercase.
# BRL, CNY and MYR work for in-country PayPal accounts only; PayPal still lists them.
CURRENCIES = frozenset(
    {
        "aud", "brl", "cad", "chf", "cny", "czk", "dkk", "eur", "gbp", "hkd", "huf", "ils",
        "jpy", "mxn", "myr", "nok", "nzd", "php", "pln", "sek", "sgd", "thb", "twd", "usd",
    }
)  # fmt: skip
NO_DECIMALS = frozenset({"huf", "jpy", "twd"})


def paypal_exponent(currency_code: str) -> int:
    return 0 if currency_code.lower() in NO_DECIMALS else 2


def to_paypal(amount: int, currency_code: str) -> dict[str, str]:
    """The amount as PayPal's money object; INVALID when PayPal cannot take it exactly."""
    code = currency_code.lower()
    exponent = paypal_exponent(code)
    shift = exponent - currency_exponent(code)
    if shift >= 0:
        units = amount * 10**shift
    else:
        step = 10**-shift
        if amount % step:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"PayPal takes {code.upper()} amounts without decimals "
                f"(in steps of {step} minor units).",
            )
        units = amount // step
    value = str(units) if exponent == 0 else f"{units // 100}.{units % 100:02d}"
    return {"currency_code": code.upper(), "value": value}


def from_paypal(money: Mapping[str, Any] | None, currency_code: str) -> int:
    """A PayPal money object in our minor units, rounded down: never more than PayPal holds.

    OTHER when it is missing, malformed or in another currency: an answer we cannot read
    must not be taken for an amount.
    """
    code = currency_code.lower()
    if not money or str(money.get("currency_code", "")).lower() != code:
        raise ProviderError(ProviderErrorKind.OTHER, f"PayPal answered no {code.upper()} amount.")
    try:
        value = Decimal(str(money.get("value")))
    except InvalidOperation:
        message = "PayPal answered a malformed amount."
        raise ProviderError(ProviderErrorKind.OTHER, message) from None
    # Bounded before int(): no Decimal('1E+999999') is ever expanded.
    if not value.is_finite() or not 0 <= value <= MAX_AMOUNT:
        raise ProviderError(ProviderErrorKind.OTHER, "PayPal answered a malformed amount.")
    return int(value.scaleb(currency_exponent(code)))
