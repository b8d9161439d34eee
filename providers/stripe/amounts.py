"""Our minor units to the integers Stripe's API takes, and back.

We keep money in the currency's ISO 4217 minor units (`currency_exponent`: cents, yen, fils).
Stripe's API mostly agrees, but it keeps its own exponents (docs.stripe.com/currencies): the
currencies on its zero-decimal list take whole units, its three-decimal currencies take
thousandths whose last digit must be 0, and every other currency takes hundredths, even where
ISO says zero decimals (ISK: 1 króna is 100 at Stripe).
"""

from __future__ import annotations

from payments.money import currency_exponent
from providers.base import ProviderError, ProviderErrorKind

ZERO_DECIMAL = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def stripe_exponent(currency_code: str) -> int:
    code = currency_code.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(amount: int, currency_code: str) -> int:
    """The amount as Stripe takes it; INVALID when Stripe cannot represent it exactly.

    We refuse rather than round: a rounded amount would charge the customer something other
    than the cart total, so an unpayable price has to be fixed in the catalogue.
    """
    shift = stripe_exponent(currency_code) - currency_exponent(currency_code)
    if shift >= 0:
        stripe_amount = amount * 10**shift
    else:
        step = 10**-shift
        if amount % step:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"Stripe takes {currency_code} amounts in steps of {step} minor units.",
            )
        stripe_amount = amount // step
    # Stripe's card partners settle three-decimal currencies in tens of the minor unit.
    if currency_code.lower() in THREE_DECIMAL and stripe_amount % 10:
        raise ProviderError(
            ProviderErrorKind.INVALID,
            f"Stripe takes {currency_code} amounts whose last digit is 0 (5120, not 5124).",
        )
    return stripe_amount


def from_stripe(stripe_amount: int, currency_code: str) -> int:
    """A Stripe amount in our minor units, rounded down: never more than Stripe holds."""
    shift = stripe_exponent(currency_code) - currency_exponent(currency_code)
    if shift >= 0:
        return stripe_amount // 10**shift
    return stripe_amount * 10**-shift
