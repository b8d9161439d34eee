"""The `klarna` provider: Klarna Payments and Order Management (settings: KLARNA_*)."""

from providers.klarna.provider import KlarnaProvider

__all__ = ["KlarnaProvider"]
