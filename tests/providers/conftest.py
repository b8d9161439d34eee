"""Fixtures for the provider adapters: a fake Stripe over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.registry import get_provider
from providers.stripe import StripeProvider
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
