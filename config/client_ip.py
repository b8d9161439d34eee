"""The client's address, for login lockouts (django-axes) and API throttles (DRF).

Both count per address, so the address must be one a client cannot choose: REMOTE_ADDR, or
behind PROXY_COUNT reverse proxies the address the outermost proxy saw, which is the
PROXY_COUNT-th entry of X-Forwarded-For from the right (DRF's NUM_PROXIES rule, so the two
agree). Entries further left were written by the client and are ignored.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote_addr = str(request.META.get("REMOTE_ADDR", ""))
    count = settings.PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not count or not forwarded:
        return remote_addr
    hops = [hop.strip() for hop in str(forwarded).split(",")]
    return hops[-min(count, len(hops))]
