"""Per-client request throttles of the APIs (SPEC section 10), as DRF throttles.

The rates are settings read on every request (STORE_API_THROTTLE, ADMIN_API_THROTTLE: DRF
rate strings, None for no throttle), not DRF's DEFAULT_THROTTLE_RATES, which DRF copies once
at import. An answer over the rate is 429 with Retry-After and the contract's error body
(payments.api.errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:  # DRF imports this module while it builds APIView itself
    from rest_framework.views import APIView


class StoreThrottle(SimpleRateThrottle):
    """The storefront: per client address (REMOTE_ADDR, or as PROXY_COUNT says)."""

    scope = "store"

    def get_rate(self) -> str | None:
        return settings.STORE_API_THROTTLE

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AdminThrottle(SimpleRateThrottle):
    """The admin API: per staff user (its permission check runs first, so a user is known)."""

    scope = "admin"

    def get_rate(self) -> str | None:
        return settings.ADMIN_API_THROTTLE

    def get_cache_key(self, request: Request, view: APIView) -> str:
        user = request.user
        ident = f"user:{user.pk}" if user and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
