"""What Klarna is told about a purchase: its markets, and the body of a session or order.

Klarna takes amounts as integers in the currency's minor units, as we keep them: every
currency it sells in has two decimals, so nothing is converted. It checks that the order
lines add up to `order_amount` (and the tax to `order_tax_amount`), and that the order
created from an authorization carries the purchase data the customer authorized.
"""

from __future__ import annotations

from typing import Any

from providers.base import ProviderError, ProviderErrorKind, SessionInput

# Klarna's markets: the purchase country and the currency it must be paid in there
# (docs.klarna.com, "Klarna payments: markets and currencies").
MARKETS = {
    "at": "eur", "au": "aud", "be": "eur", "ca": "cad", "ch": "chf", "cz": "czk",
    "de": "eur", "dk": "dkk", "es": "eur", "fi": "eur", "fr": "eur", "gb": "gbp",
    "gr": "eur", "hu": "huf", "ie": "eur", "it": "eur", "mx": "mxn", "nl": "eur",
    "no": "nok", "nz": "nzd", "pl": "pln", "pt": "eur", "ro": "ron", "se": "sek",
    "sk": "eur", "us": "usd",
}  # fmt: skip
COUNTRIES = frozenset(MARKETS)
CURRENCIES = frozenset(MARKETS.values())

# Klarna's limits on an order line's texts.
REFERENCE_MAX = 64
NAME_MAX = 255


def order_body(session: SessionInput) -> dict[str, Any]:
    """The purchase as a Klarna Payments session or order takes it.

    `merchant_reference1` is the cart and `merchant_reference2` the session, so an order
    read back later (a notification, a re-read) names what it belongs to.
    """
    country = session.country.lower()
    if country not in COUNTRIES:
        raise ProviderError(
            ProviderErrorKind.INVALID, "Klarna needs a purchase country it sells in."
        )
    return {
        "purchase_country": country.upper(),
        "purchase_currency": session.currency_code.upper(),
        "locale": f"en-{country.upper()}",
        "order_amount": session.amount,
        "order_tax_amount": 0,
        "order_lines": order_lines(session),
        "merchant_reference1": session.cart_id,
        "merchant_reference2": session.session_id,
        "intent": "buy",
    }


def order_lines(session: SessionInput) -> list[dict[str, Any]]:
    """The cart's lines; when they do not add up to the amount (a swap's difference, a
    discount), one more line makes up the difference, so Klarna's sum check holds and the
    customer still sees what they buy. Tax is in the prices: we keep no separate tax."""
    lines = [
        line_of(
            "physical",
            reference=line.reference,
            name=line.title or line.reference,
            quantity=line.quantity,
            unit_price=line.unit_price,
            total=line.total,
        )
        for line in session.lines
    ]
    difference = session.amount - sum(line.total for line in session.lines)
    if not lines:
        lines.append(
            line_of("physical", reference="order", name="Order", quantity=1,
                    unit_price=session.amount, total=session.amount)
        )  # fmt: skip
    elif difference:
        kind = "surcharge" if difference > 0 else "discount"
        lines.append(
            line_of(kind, reference="adjustment", name="Adjustment", quantity=1,
                    unit_price=difference, total=difference)
        )  # fmt: skip
    return lines


def line_of(
    type: str, *, reference: str, name: str, quantity: int, unit_price: int, total: int
) -> dict[str, Any]:
    return {
        "type": type,
        "reference": reference[:REFERENCE_MAX],
        "name": name[:NAME_MAX],
        "quantity": quantity,
        "unit_price": unit_price,
        "tax_rate": 0,
        "total_amount": total,
        "total_discount_amount": quantity * unit_price - total,
        "total_tax_amount": 0,
    }
