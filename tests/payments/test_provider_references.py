"""The back office shows each provider's own ids for a payment, linked to its dashboard."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from checkout.models import Order
from payments.models import Payment
from providers.base import ProviderReference
from providers.registry import get_provider
from tests import factories
from tests.backoffice import place_order, staff_user

pytestmark = pytest.mark.django_db


def test_each_provider_names_its_ids_with_links_to_its_dashboard(
    stripe_server, paypal_server, klarna_server
):
    paypal = {"order_id": "5O1", "authorization_id": "0A2", "capture_id": "3C3"}
    klarna = {"order_id": "f3a", "fraud_status": "PENDING"}

    assert get_provider("stripe").references({"id": "pi_1"}) == (
        ProviderReference("PaymentIntent", "pi_1", "https://dashboard.stripe.com/payments/pi_1"),
    )
    assert [(r.label, r.value, r.url) for r in get_provider("paypal").references(paypal)] == [
        ("Order", "5O1", ""),
        ("Authorization", "0A2", "https://www.paypal.com/activity/payment/0A2"),
        ("Capture", "3C3", "https://www.paypal.com/activity/payment/3C3"),
    ]
    assert [(r.label, r.value) for r in get_provider("klarna").references(klarna)] == [
        ("Order", "f3a"),
        ("Fraud status", "PENDING"),
    ]
    assert get_provider("manual").references({}) == ()


def test_the_payment_page_links_the_providers_ids(stripe_server, region, product):
    factories.RegionFactory(providers=["stripe"])  # the stripe provider's row
    order = Order.objects.get(pk=place_order(region=region, items=[(product, 1)])["id"])
    payment = order.payments.get()
    Payment.objects.filter(pk=payment.pk).update(provider_id="stripe", data={"id": "pi_9"})
    client = Client()
    client.force_login(staff_user(superuser=True))

    page = client.get(reverse("admin:payments_payment_change", args=[quote(payment.pk)]))

    body = page.content.decode()
    assert 'href="https://dashboard.stripe.com/payments/pi_9"' in body
    assert "PaymentIntent" in body
