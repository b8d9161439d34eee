"""Storefront routes, spelled out: the SPEC's paths are the contract."""

from django.urls import path

from checkout.api import views

cart = views.CartViewSet.as_view
app_name = "store"

urlpatterns = [
    path("regions", views.RegionViewSet.as_view({"get": "list"}), name="regions"),
    path("products", views.ProductViewSet.as_view({"get": "list"}), name="products"),
    path("carts", cart({"post": "create"}), name="carts"),
    path("carts/<str:pk>", cart({"get": "retrieve", "post": "update"}), name="cart"),
    path("carts/<str:pk>/line-items", cart({"post": "add_line_item"}), name="line-items"),
    path(
        "carts/<str:pk>/line-items/<str:item_id>",
        cart({"post": "update_line_item", "delete": "delete_line_item"}),
        name="line-item",
    ),
    path(
        "carts/<str:pk>/payment-sessions",
        cart({"post": "create_payment_sessions"}),
        name="payment-sessions",
    ),
    path(
        "carts/<str:pk>/payment-session",
        cart({"post": "select_payment_session"}),
        name="payment-session-select",
    ),
    path(
        "carts/<str:pk>/payment-sessions/<str:provider_id>",
        cart({"post": "update_payment_session", "delete": "delete_payment_session"}),
        name="payment-session",
    ),
    path(
        "carts/<str:pk>/payment-sessions/<str:provider_id>/refresh",
        cart({"post": "refresh_payment_session"}),
        name="payment-session-refresh",
    ),
    path(
        "carts/<str:pk>/complete",
        views.CartCompleteView.as_view({"post": "complete"}),
        name="complete",
    ),
    path("orders/<str:pk>", views.OrderViewSet.as_view({"get": "retrieve"}), name="order"),
]
