"""Admin routes of the payment domain, spelled out (mounted under /api/admin/ by checkout)."""

from django.urls import path

from payments.api import admin_views as views

payment = views.PaymentViewSet.as_view

urlpatterns = [
    path(
        "payment-providers",
        views.PaymentProviderViewSet.as_view({"get": "list"}),
        name="payment-providers",
    ),
    path("payments/<str:pk>", payment({"get": "retrieve"}), name="payment"),
    path("payments/<str:pk>/capture", payment({"post": "capture"}), name="payment-capture"),
    path("payments/<str:pk>/refund", payment({"post": "refund"}), name="payment-refund"),
    path("payments/<str:pk>/cancel", payment({"post": "cancel"}), name="payment-cancel"),
    path(
        "providers/test/ledger",
        views.TestLedgerViewSet.as_view({"get": "list"}),
        name="test-ledger",
    ),
]
