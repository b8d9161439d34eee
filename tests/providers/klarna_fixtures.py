"""Fixtures for the klarna provider: a fake Klarna over real sockets, and settings that
point the provider at it. Imported by the Klarna test modules (provider and checkout)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.klarna import KlarnaProvider
from providers.registry import get_provider
from tests.providers.klarna_fake import PASSWORD, USERNAME, FakeKlarna


@pytest.fixture
def klarna_server(settings) -> Iterator[FakeKlarna]:  # type: ignore[no-untyped-def]
    """The registry forgets its providers when these settings change, so the provider
    built next talks to this server."""
    with FakeKlarna() as server:
        settings.KLARNA_USERNAME = USERNAME
        settings.KLARNA_PASSWORD = PASSWORD
        settings.KLARNA_API_BASE = server.url
        # Short, so a test of a slow Klarna is quick; ample for a local answer.
        settings.KLARNA_TIMEOUT_SECONDS = 2
        settings.KLARNA_NOTIFICATION_URL = "https://shop.example.com/api/hooks/klarna"
        if "klarna" not in settings.PAYMENT_PROVIDERS:
            settings.PAYMENT_PROVIDERS = [*settings.PAYMENT_PROVIDERS, "klarna"]
        yield server
    assert not server.errors, "The fake Klarna crashed:\n" + "\n".join(server.errors)


@pytest.fixture
def klarna_provider(klarna_server: FakeKlarna) -> KlarnaProvider:
    provider = get_provider("klarna")
    assert isinstance(provider, KlarnaProvider)
    return provider
