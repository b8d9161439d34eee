"""The `stripe` provider: PaymentIntents with manual capture (settings: STRIPE_*)."""

from providers.stripe.provider import StripeProvider

__all__ = ["StripeProvider"]
