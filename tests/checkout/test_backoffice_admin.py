"""The back office in the Django admin: money actions, permissions, regions, query counts."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from checkout.models import Order, Region
from payments import errors
from payments.models import Payment, PaymentProvider, Refund
from payments.services import SYSTEM, payment_capture
from providers.test.provider import TestProvider
from tests import factories
from tests.backoffice import MONEY_PERMISSIONS, place_order, remote, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(region, product) -> Order:  # type: ignore[no-untyped-def]
    return Order.objects.get(pk=place_order(region=region, items=[(product, 2)])["id"])


def logged_in(*permissions: str, username: str = "operator") -> Client:
    client = Client()
    client.force_login(
        staff_user(*permissions, "payments.view_payment", "checkout.view_order", username=username)
    )
    return client


def action_url(order: Order, action: str) -> str:
    payment = order.payments.get()
    return reverse("admin:checkout_order_money_action", args=[quote(order.pk), payment.pk, action])


def submit(client: Client, url: str, **fields: str):  # type: ignore[no-untyped-def]
    """Open the confirmation page, then post its form with these fields changed."""
    page = client.get(url)
    assert page.status_code == 200
    form = dict(re.findall(r'name="(request_key|amount)" value="([^"]*)"', page.content.decode()))
    return client.post(url, {**form, **fields}, follow=True)


def test_an_operator_captures_part_then_refunds_part_of_an_order(order):
    client = logged_in(*MONEY_PERMISSIONS)

    page = client.get(action_url(order, "capture"))
    assert 'value="30.00"' in page.content.decode()  # prefilled with what can be captured
    captured = submit(client, action_url(order, "capture"), amount="20.00")
    assert "Captured $20.00 of" in captured.content.decode()
    assert "released $10.00 of the authorization" in captured.content.decode()
    refunded = submit(
        client, action_url(order, "refund"), amount="5.50", reason="return", note="torn"
    )

    payment = Payment.objects.get(order=order)
    assert (payment.amount_captured, payment.amount_refunded) == (2000, 550)
    assert Refund.objects.get().note == "torn"
    body = refunded.content.decode()
    assert "Refunded $5.50 (return)" in body and 'id="timeline"' in body and "operator" in body
    order.refresh_from_db()
    assert order.payment_status == "partially_refunded"


def test_a_double_submitted_refund_form_refunds_once(order):
    client = logged_in(*MONEY_PERMISSIONS)
    submit(client, action_url(order, "capture"))
    url = action_url(order, "refund")
    page = client.get(url).content.decode()
    key = re.search(r'name="request_key" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    for _ in range(2):
        client.post(url, {"amount": "10.00", "reason": "return", "request_key": key})

    assert Payment.objects.get(order=order).amount_refunded == 1000
    assert len(remote("refund")) == 1


def test_a_refund_over_what_was_captured_stays_on_the_form_with_the_limit_in_dollars(order):
    client = logged_in(*MONEY_PERMISSIONS)
    submit(client, action_url(order, "capture"), amount="10.00")

    response = submit(
        client, action_url(order, "refund"), amount="10.01", reason="claim", note="scratched"
    )

    body = response.content.decode()
    assert response.status_code == 200 and response.redirect_chain == []
    assert "At most $10.00 can be refunded." in body and "At most 1000" not in body
    # The operator's input is still there to correct.
    assert 'value="10.01"' in body and "scratched" in body
    assert '<option value="claim" selected>' in body
    assert Payment.objects.get(order=order).amount_refunded == 0


def test_without_the_refund_permission_there_is_no_button_and_the_url_is_forbidden(order):
    client = logged_in("payments.capture_payment", username="capturer")
    submit(client, action_url(order, "capture"))

    page = client.get(reverse("admin:checkout_order_change", args=[order.pk])).content.decode()

    assert 'id="refund-' not in page and "Timeline" in page
    assert client.get(action_url(order, "refund")).status_code == 403
    assert client.post(action_url(order, "refund"), {"amount": "1"}).status_code == 403


def test_buttons_show_only_what_is_possible(order):
    client = logged_in(*MONEY_PERMISSIONS)
    # The admin's own links quote the id (`_` is `_5F`).
    page = client.get(
        reverse("admin:checkout_order_change", args=[quote(order.pk)])
    ).content.decode()
    assert 'id="capture-' in page and 'id="cancel-' in page and 'id="refund-' not in page

    submit(client, action_url(order, "cancel"))

    page = client.get(reverse("admin:checkout_order_change", args=[order.pk])).content.decode()
    assert 'id="capture-' not in page and 'id="cancel-' not in page
    assert Payment.objects.get(order=order).canceled_at is not None


def test_bulk_capture_confirms_then_reports_each_order(region, product):
    orders = [place_order(region=region, items=[(product, 1)])["id"] for _ in range(3)]
    # The third authorization expired at the provider: its capture is refused there.
    expired = Payment.objects.get(order_id=orders[2])
    TestProvider().cancel(expired.as_input(), idempotency_key="expired-remotely")
    client = logged_in(*MONEY_PERMISSIONS)
    changelist = reverse("admin:checkout_order_changelist")
    chosen = {"action": "capture_orders", "_selected_action": orders}

    confirm = client.post(changelist, chosen)
    # What each order will capture, and the total (the provider-side expiry is news to us).
    assert confirm.content.decode().count("<strong>$15.00</strong>") == 3
    assert 'value="Yes, capture $45.00"' in confirm.content.decode()
    assert not Payment.objects.filter(captured_at__isnull=False).exists()
    key = re.search(r'name="request_key" value="([^"]+)"', confirm.content.decode()).group(1)  # type: ignore[union-attr]

    results = client.post(changelist, {**chosen, "confirmed": "yes", "request_key": key})

    body = results.content.decode()
    assert body.count('class="ok"') == 2 and body.count('class="failed"') == 1
    assert "Captured 2 orders: $30.00; 1 could not be captured." in body
    assert Payment.objects.filter(captured_at__isnull=False).count() == 2


def test_a_region_offers_only_installed_providers(region, settings):
    PaymentProvider.objects.create(id="stripe", is_installed=False)
    client = Client()
    client.force_login(staff_user(username="boss", superuser=True))
    url = reverse("admin:checkout_region_change", args=[region.pk])

    page = client.get(url).content.decode()
    assert "Not installed, so not offered: stripe" in page
    assert 'value="stripe"' not in page
    refused = client.post(
        url, {"name": region.name, "currency_code": "usd", "payment_providers": ["stripe"]}
    )
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    client.post(url, {"name": region.name, "currency_code": "usd", "payment_providers": ["manual"]})
    assert list(
        Region.objects.get(pk=region.pk).payment_providers.values_list("id", flat=True)
    ) == ["manual"]


@pytest.mark.parametrize(
    "page",
    [
        "checkout_order",
        "checkout_region",
        "checkout_cart",
        "checkout_swap",
        "payments_payment",
        "payments_paymentevent",
        "payments_paymentprovider",
        "payments_refund",
        "payments_paymentsession",
        "payments_webhookevent",
        "payments_idempotencykey",
    ],
)
def test_change_lists_cost_a_fixed_number_of_queries(region, product, page):
    client = Client()
    client.force_login(staff_user(username="boss", superuser=True))
    url = reverse(f"admin:{page}_changelist")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    place_order(region=region, items=[(product, 1)])
    few = count()
    for _ in range(4):
        place_order(region=region, items=[(factories.ProductFactory(prices={"usd": 10}), 2)])
    assert count() == few


def test_an_amount_finer_than_the_currency_is_refused_not_rounded(order):
    client = logged_in(*MONEY_PERMISSIONS)

    response = submit(client, action_url(order, "capture"), amount="10.001")

    assert "USD has 2 decimals" in response.content.decode()
    assert Payment.objects.get(order=order).captured_at is None


def test_the_order_page_says_in_words_what_is_still_in_flight_and_what_happened(order):
    payment = order.payments.get()
    # The sandbox drops the capture's answer after it took effect (its fail_after_capture).
    behaviour = {**payment.data["behaviour"], "fail_after_capture": True}
    Payment.objects.filter(pk=payment.pk).update(data={**payment.data, "behaviour": behaviour})
    with pytest.raises(errors.ProviderUnavailable):
        payment_capture(payment_id=payment.id, actor=SYSTEM)

    page = logged_in(*MONEY_PERMISSIONS).get(
        reverse("admin:checkout_order_change", args=[quote(order.pk)])
    )

    body = page.content.decode()
    assert "Captured: answer lost; the worker asks the provider again" in body
    assert "Payment authorized" in body and "Customer" in body and " UTC" in body
