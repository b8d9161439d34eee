"""The `paypal` provider: PayPal's Orders v2 and Payments v2 REST APIs over httpx."""

from providers.paypal.provider import PayPalProvider

__all__ = ["PayPalProvider"]
