"""Admin API access (SPEC section 6): staff to read; a model permission per money operation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from payments.models import Refund
from tests.backoffice import admin_client, admin_post, staff_user

pytestmark = pytest.mark.django_db

REFUND = {"amount": 100, "reason": "other"}


def test_anonymous_requests_get_401_with_the_contracts_error_body(payment):
    anonymous = APIClient()

    read = anonymous.get(f"/api/admin/payments/{payment.id}")
    write = anonymous.post(f"/api/admin/payments/{payment.id}/refund", REFUND, format="json")
    orders = anonymous.get("/api/admin/orders")

    for response in (read, write, orders):
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
        assert set(response.json()) == {"code", "message"}
        assert response["WWW-Authenticate"] == "Token"


def test_a_bad_token_is_401(payment):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    response = client.get(f"/api/admin/payments/{payment.id}")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_logged_in_user_who_is_not_staff_is_forbidden(payment):
    customer = User.objects.create_user(username="customer", password="pw")

    response = admin_client(customer).get(f"/api/admin/payments/{payment.id}")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_staff_without_refund_payment_gets_403_on_refund_and_can_still_read(payment):
    clerk = admin_client(staff_user("payments.capture_payment", username="clerk"))
    assert admin_post(clerk, f"payments/{payment.id}/capture").status_code == 200

    refund = admin_post(clerk, f"payments/{payment.id}/refund", REFUND)
    order_refund = admin_post(clerk, f"orders/{payment.order_id}/refund", REFUND)
    cancel = admin_post(clerk, f"payments/{payment.id}/cancel")

    for response in (refund, order_refund, cancel):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    assert "payments.refund_payment" in refund.json()["message"]
    assert not Refund.objects.exists()
    assert clerk.get(f"/api/admin/payments/{payment.id}").status_code == 200
    assert clerk.get(f"/api/admin/orders/{payment.order_id}").status_code == 200
    assert clerk.get("/api/admin/orders").status_code == 200


def test_each_money_operation_needs_its_own_permission(payment):
    refunder = admin_client(staff_user("payments.refund_payment", username="refunder"))

    assert admin_post(refunder, f"payments/{payment.id}/capture").status_code == 403
    assert admin_post(refunder, f"orders/{payment.order_id}/capture").status_code == 403
    assert admin_post(refunder, f"orders/{payment.order_id}/cancel").status_code == 403


def test_the_django_admin_session_authenticates_too(client, payment):
    superuser = staff_user(username="boss", superuser=True)
    session = APIClient()
    session.force_login(superuser)

    read = session.get(f"/api/admin/payments/{payment.id}")
    capture = session.post(f"/api/admin/payments/{payment.id}/capture", {}, format="json")

    assert read.status_code == 200
    assert capture.status_code == 200
    assert capture.json()["amount_captured"] == 3000


def test_the_storefront_stays_open_without_credentials(order):
    assert APIClient().get(f"/api/store/orders/{order['id']}").status_code == 200
