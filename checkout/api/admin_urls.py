"""Admin routes (SPEC section 6), spelled out: the SPEC's paths are the contract.
Mounted at /api/admin/; the payment domain's routes come from payments.api.admin_urls."""

from django.urls import path

from checkout.api import admin_views as views
from payments.api import admin_urls as payments_admin_urls

app_name = "admin-api"

region = views.RegionViewSet.as_view
order = views.OrderViewSet.as_view
swap = views.SwapViewSet.as_view

urlpatterns = [
    *payments_admin_urls.urlpatterns,
    path("regions", region({"get": "list", "post": "create"}), name="regions"),
    path("regions/<str:pk>", region({"get": "retrieve", "post": "update"}), name="region"),
    path(
        "regions/<str:pk>/payment-providers",
        region({"post": "add_provider"}),
        name="region-providers",
    ),
    path(
        "regions/<str:pk>/payment-providers/<str:provider_id>",
        region({"delete": "remove_provider"}),
        name="region-provider",
    ),
    path(
        "products",
        views.ProductViewSet.as_view({"get": "list", "post": "create"}),
        name="products",
    ),
    path("orders", order({"get": "list"}), name="orders"),
    path("orders/<str:pk>", order({"get": "retrieve"}), name="order"),
    path("orders/<str:pk>/capture", order({"post": "capture"}), name="order-capture"),
    path("orders/<str:pk>/refund", order({"post": "refund"}), name="order-refund"),
    path("orders/<str:pk>/cancel", order({"post": "cancel"}), name="order-cancel"),
    path("orders/<str:pk>/swaps", order({"post": "create_swap"}), name="order-swaps"),
    path("swaps/<str:pk>", swap({"get": "retrieve"}), name="swap"),
    path(
        "swaps/<str:pk>/process-payment",
        swap({"post": "process_payment"}),
        name="swap-process-payment",
    ),
    path("swaps/<str:pk>/cancel", swap({"post": "cancel"}), name="swap-cancel"),
]
