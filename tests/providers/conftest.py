"""Fixtures for the provider adapters: a fake Stripe and a fake PayPal over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.paypal import PayPalProvider
from providers.registry import get_provider
from providers.stripe import StripeProvider
from tests.providers.paypal_fake import CLIENT_ID as PAYPAL_CLIENT_ID
from tests.providers.paypal_fake import CLIENT_SECRET as PAYPAL_CLIENT_SECRET
from tests.providers.paypal_fake import WEBHOOK_ID as PAYPAL_WEBHOOK_ID
from tests.providers.paypal_fake import FakePayPal
from tests.providers.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe

STRIPE_PROVIDER_PATH = "providers.stripe.StripeProvider"


@pytest.fixture
def stripe_server(settings) -> Iterator[FakeStripe]:  # type: ignore[no-untyped-def]
    """A fake Stripe on a random local port, and settings that point the provider at it.

    The registry forgets its providers when these settings change, so the provider built
    next uses this server.
    """
    with FakeStripe(api_key=API_KEY) as server:
        settings.STRIPE_API_KEY = API_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = server.url
        # Short, so a test of a hanging Stripe is quick; ample for a local answer.
        settings.STRIPE_TIMEOUT_SECONDS = 2
        if STRIPE_PROVIDER_PATH not in settings.PAYMENT_PROVIDERS:
            settings.PAYMENT_PROVIDERS = [*settings.PAYMENT_PROVIDERS, STRIPE_PROVIDER_PATH]
        yield server
    assert not server.errors, "The fake Stripe crashed:\n" + "\n".join(server.errors)


@pytest.fixture
def stripe_provider(stripe_server: FakeStripe) -> StripeProvider:
    provider = get_provider("stripe")
    assert isinstance(provider, StripeProvider)
    return provider


PAYPAL_PROVIDER_PATH = "providers.paypal.PayPalProvider"


@pytest.fixture
def paypal_server(settings) -> Iterator[FakePayPal]:  # type: ignore[no-untyped-def]
    """A fake PayPal on a random local port, and settings that point the provider at it
    (the registry builds the provider anew when PAYPAL_ settings change)."""
    with FakePayPal() as server:
        settings.PAYPAL_CLIENT_ID = PAYPAL_CLIENT_ID
        settings.PAYPAL_CLIENT_SECRET = PAYPAL_CLIENT_SECRET
        settings.PAYPAL_WEBHOOK_ID = PAYPAL_WEBHOOK_ID
        settings.PAYPAL_API_BASE = server.url
        # Short, so a test of a slow PayPal is quick; ample for a local answer.
        settings.PAYPAL_TIMEOUT_SECONDS = 2
        if PAYPAL_PROVIDER_PATH not in settings.PAYMENT_PROVIDERS:
            settings.PAYMENT_PROVIDERS = [*settings.PAYMENT_PROVIDERS, PAYPAL_PROVIDER_PATH]
        yield server
    assert not server.errors, "The fake PayPal crashed:\n" + "\n".join(server.errors)
    # Every PayPal-Request-Id we send names one request: the same key, the same body.
    assert not server.key_reuses, f"PayPal-Request-Ids reused for other bodies: {server.key_reuses}"


@pytest.fixture
def paypal_provider(paypal_server: FakePayPal) -> PayPalProvider:
    provider = get_provider("paypal")
    assert isinstance(provider, PayPalProvider)
    return provider
