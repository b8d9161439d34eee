"""The benchmark's flow keeps working: a few seconds of `make bench` against the live server."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from bench.flow import run_clients
from checkout.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_benchmark_flow_turns_every_checkout_into_an_order(live_server):
    # Providers are registered by post_migrate; the store comes from the demo seed, as
    # `make bench` does it.
    call_command("seed_demo", force=True, stdout=io.StringIO())

    result = run_clients(live_server.url, clients=2, seconds=2)

    assert result.errors == []
    assert result.checkouts, "no checkout finished in the time given"
    order_ids = {checkout.order_id for checkout in result.checkouts}
    assert len(order_ids) == len(result.checkouts)
    assert Order.objects.filter(pk__in=order_ids).count() == len(result.checkouts)
