"""Finding 2 (medium): back-office actions that change something, and their History.

A view-only user ran the webhook list's "process again" action, which declared no
permission, though processing can complete carts and record captures and refunds. Every
action and custom admin view that changes something now checks a change or money
permission and reaches its objects through the admin's get_queryset; every money action is
also a LogEntry (the object's History), from the admin site and from the admin API.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.urls import reverse

from checkout.models import Order
from payments.models import Payment, WebhookEvent
from tests.backoffice import MONEY_PERMISSIONS, admin_client, admin_post, staff_user
from tests.security.conftest import site_client

pytestmark = pytest.mark.django_db

WEBHOOKS = "/admin/payments/webhookevent/"
VIEW_ORDERS = ("payments.view_payment", "checkout.view_order")


def failed_event() -> WebhookEvent:
    return WebhookEvent.objects.create(
        provider_id="test",
        event_id="evt_failed",
        type="payment.updated",
        body="{}",
        status=WebhookEvent.Status.FAILED,
    )


def reprocess(client, event: WebhookEvent):  # type: ignore[no-untyped-def]
    return client.post(
        WEBHOOKS, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True
    )


def test_a_view_only_user_cannot_process_webhook_events_again():
    event = failed_event()
    viewer = site_client("payments.view_webhookevent")

    page = viewer.get(WEBHOOKS)
    answer = reprocess(viewer, event)

    assert page.status_code == 200 and 'value="reprocess"' not in page.content.decode()
    assert answer.status_code == 200
    event.refresh_from_db()
    assert (event.attempts, event.status) == (0, WebhookEvent.Status.FAILED)


def test_the_change_permission_allows_processing_an_event_again():
    event = failed_event()
    operator = site_client("payments.view_webhookevent", "payments.change_webhookevent")

    assert 'value="reprocess"' in operator.get(WEBHOOKS).content.decode()
    reprocess(operator, event)

    event.refresh_from_db()
    assert event.attempts == 1


def test_a_money_page_needs_the_order_visible_to_the_operator_as_well(order: Order):
    payment = order.payments.get()
    url = reverse(
        "admin:checkout_order_money_action", args=[quote(order.pk), payment.pk, "capture"]
    )
    # The money permission alone: the order itself is not theirs to see.
    blind = site_client(*MONEY_PERMISSIONS, username="blind")

    page = blind.get(url)
    sent = blind.post(url, {"amount": "30.00", "request_key": "k1"})

    assert page.status_code == 404 and sent.status_code == 404
    assert Payment.objects.get(pk=payment.pk).amount_captured == 0


def test_a_money_action_on_the_admin_site_is_in_the_orders_history(order: Order):
    payment = order.payments.get()
    url = reverse(
        "admin:checkout_order_money_action", args=[quote(order.pk), payment.pk, "capture"]
    )
    operator = site_client(*MONEY_PERMISSIONS, *VIEW_ORDERS, username="ops")
    key = re.search(r'name="request_key" value="([^"]+)"', operator.get(url).content.decode())
    assert key is not None

    operator.post(url, {"amount": "12.00", "request_key": key.group(1)})

    [entry] = LogEntry.objects.all()
    assert (entry.user.username, entry.object_id) == ("ops", order.pk)
    assert entry.get_change_message() == f"Captured $12.00 of {payment.pk}."
    history = operator.get(reverse("admin:checkout_order_history", args=[order.pk]))
    assert f"Captured $12.00 of {payment.pk}." in history.content.decode()


def test_a_bulk_capture_is_in_each_orders_history(order: Order):
    operator = site_client(*MONEY_PERMISSIONS, *VIEW_ORDERS, username="ops")
    chosen = {"action": "capture_orders", "_selected_action": [order.pk]}

    operator.post(
        reverse("admin:checkout_order_changelist"),
        {**chosen, "confirmed": "yes", "request_key": "bulk-1"},
    )

    assert Payment.objects.get(order=order).amount_captured == 3000
    assert list(LogEntry.objects.values_list("object_id", "change_message")) == [
        (order.pk, "Captured in full (bulk action).")
    ]


def test_a_money_action_through_the_admin_api_is_in_the_history_too(order: Order):
    payment = order.payments.get()
    api = admin_client(staff_user(*MONEY_PERMISSIONS, username="script"))

    assert admin_post(api, f"payments/{payment.pk}/capture").status_code == 200
    refund = {"amount": 500, "reason": "return"}
    assert admin_post(api, f"orders/{order.pk}/refund", refund).status_code == 200

    entries = LogEntry.objects.order_by("action_time", "id")
    assert [(e.user.username, e.object_id, e.change_message) for e in entries] == [
        ("script", payment.pk, "Captured all (admin API)."),
        ("script", order.pk, "Refunded 500 (return) (admin API)."),
    ]
