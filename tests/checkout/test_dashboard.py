"""The back office's home page: what needs doing, the day's and week's money, in a bounded
number of queries whatever the number of orders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payments.models import Payment, WebhookEvent
from tests import factories
from tests.backoffice import MONEY_PERMISSIONS, admin_client, admin_post, place_order, staff_user

pytestmark = pytest.mark.django_db

DASHBOARD_QUERIES = 7


def boss() -> Client:
    client = Client()
    client.force_login(staff_user(username="boss", superuser=True))
    return client


def test_the_dashboard_says_what_awaits_capture_what_expires_and_what_moved(region, product):
    orders = [place_order(region=region, items=[(product, 2)])["id"] for _ in range(3)]
    api = admin_client(staff_user(*MONEY_PERMISSIONS, username="script"))
    assert admin_post(api, f"orders/{orders[0]}/capture").status_code == 200
    refund = {"amount": 500, "reason": "return"}
    assert admin_post(api, f"orders/{orders[0]}/refund", refund).status_code == 200
    # One authorization lapses tomorrow: it is flagged.
    Payment.objects.filter(order_id=orders[1]).update(
        authorization_expires_at=timezone.now() + timedelta(hours=20)
    )
    WebhookEvent.objects.create(
        provider_id="test", event_id="e1", type="x", body="{}", status="failed"
    )

    page = boss().get(reverse("admin:index"))

    figures = page.context["dashboard"]
    assert figures["awaiting"]["count"] == 2 and figures["awaiting"]["amounts"] == ["$60.00"]
    assert figures["awaiting"]["expiring"] == 1
    assert figures["awaiting"]["expiring_amounts"] == ["$30.00"]
    assert figures["attention"] == {"failed_webhooks": 1, "unanswered": 0}
    assert figures["moved"]["capture_today"] == ["$30.00"]
    assert figures["moved"]["refund_week"] == ["$5.00"]
    assert [(r["provider_id"], r["rate"]) for r in figures["rates"]] == [("test", 100)]
    body = page.content.decode()
    assert 'id="chart-volume"' in body and "unfold/js/chart/chart.js" in body
    assert "cdn" not in body.lower()


def test_the_dashboard_costs_the_same_queries_for_one_order_or_many(
    region, product, django_assert_max_num_queries
):
    client = boss()
    place_order(region=region, items=[(product, 1)])
    client.get(reverse("admin:index"))  # warm the content-type and session caches
    # Session, user, the five figure queries (awaiting, two attention counts, money moved,
    # authorization rates): 7 measured, whatever the orders.
    with django_assert_max_num_queries(DASHBOARD_QUERIES):
        assert client.get(reverse("admin:index")).status_code == 200
    api = admin_client(staff_user(*MONEY_PERMISSIONS, username="script"))
    for _ in range(6):
        other = factories.ProductFactory(prices={"usd": 700})
        order_id = place_order(region=region, items=[(other, 2)])["id"]
        admin_post(api, f"orders/{order_id}/capture")

    with django_assert_max_num_queries(DASHBOARD_QUERIES):
        assert client.get(reverse("admin:index")).status_code == 200


def test_staff_who_may_not_see_orders_see_no_figures():
    clerk = Client()
    clerk.force_login(staff_user("payments.view_refund", username="clerk"))

    page = clerk.get(reverse("admin:index"))

    assert page.status_code == 200 and "dashboard" not in page.context
