"""Finding 7 (low): an operator's internal refund note was shown on the public storefront
order. The storefront's refund has no note; the admin API's keeps it."""

from __future__ import annotations

import pytest
from django.test import Client

from checkout.models import Order
from tests.backoffice import MONEY_PERMISSIONS, admin_client, admin_post, staff_user

pytestmark = pytest.mark.django_db

NOTE = "Customer argued on the phone; refunded to stop a chargeback."


def test_a_refund_note_is_for_operators_only(order: Order):
    api = admin_client(staff_user(*MONEY_PERMISSIONS))
    assert admin_post(api, f"orders/{order.pk}/capture").status_code == 200
    refund = {"amount": 700, "reason": "other", "note": NOTE}
    assert admin_post(api, f"orders/{order.pk}/refund", refund).status_code == 200

    public = Client().get(f"/api/store/orders/{order.pk}")
    internal = api.get(f"/api/admin/orders/{order.pk}")

    assert public.status_code == 200
    [public_refund] = public.json()["refunds"]
    assert public_refund["amount"] == 700 and "note" not in public_refund
    assert NOTE not in public.content.decode()
    assert [r["note"] for r in internal.json()["refunds"]] == [NOTE]
