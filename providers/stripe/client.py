"""The Stripe SDK client built from settings, and the SDK's errors turned into ProviderError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind

DEFAULT_TIMEOUT_SECONDS = 10.0


def build_client() -> stripe.StripeClient:
    """A client for the account in STRIPE_API_KEY, at STRIPE_API_BASE when that is set."""
    if not settings.STRIPE_API_KEY:
        raise ImproperlyConfigured("STRIPE_API_KEY is empty: the stripe provider cannot run.")
    timeout = float(getattr(settings, "STRIPE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None,
        # The SDK's default waits 80 s. One attempt bounded by `timeout` (10 s) ends well
        # inside a 30 s worker timeout, and a provider method stops at its first failed call,
        # so it never waits on two slow ones. No retry inside the SDK: a lost answer becomes
        # UNAVAILABLE (503 with Retry-After), and the caller's retry reaches Stripe with the
        # same idempotency key, which Stripe replays; retrying here too would only double
        # the worst case while the client waits.
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=0,
    )


@contextlib.contextmanager
def stripe_errors() -> Iterator[None]:
    """Raise the SDK's exceptions as ProviderError, telling whether the outcome is known."""
    try:
        yield
    except stripe.CardError as error:
        details = error.error
        raise ProviderError(
            ProviderErrorKind.DECLINED,
            error.user_message or "The card was declined.",
            data={
                "code": error.code or "",
                "decline_code": (details.decline_code if details else None) or "",
                "request_id": error.request_id or "",
            },
        ) from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        # A timeout or a dropped connection may come after Stripe acted; a rate limit asks us
        # to come back later. Either way the caller retries with the same key.
        raise ProviderError(
            ProviderErrorKind.UNAVAILABLE,
            "Stripe could not be reached or its answer was lost; the outcome is unknown.",
            data={"request_id": error.request_id or ""},
        ) from error
    except stripe.APIError as error:
        # Stripe documents a 5xx as indeterminate (the operation may have happened), and a
        # 409 as a request with the same key still running: both are "outcome unknown", so
        # no one is told the money did not move and tries again under a fresh key.
        status = error.http_status or 0
        kind = (
            ProviderErrorKind.UNAVAILABLE
            if status >= 500 or status == 409
            else ProviderErrorKind.OTHER
        )
        raise ProviderError(
            kind,
            f"Stripe answered {status}: {error.user_message or 'server error'}",
            data={"http_status": status, "request_id": error.request_id or ""},
        ) from error
    except stripe.StripeError as error:
        # Invalid requests, wrong state, authentication, a key reused for another request:
        # Stripe refused and nothing moved.
        raise ProviderError(
            ProviderErrorKind.OTHER,
            f"Stripe refused the request: {error.user_message or type(error).__name__}",
            data={
                "code": error.code or "",
                "http_status": error.http_status or 0,
                "request_id": error.request_id or "",
            },
        ) from error
