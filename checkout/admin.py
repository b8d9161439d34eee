"""Admin registrations of regions, the catalogue, carts and orders."""

from __future__ import annotations

from django.contrib import admin

from checkout.models import Cart, LineItem, Order, Product, ProductPrice, Region
from payments.admin import money_column


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["name", "currency_code", "provider_names"]
    list_filter = ["currency_code", "payment_providers"]
    search_fields = ["name", "id"]
    filter_horizontal = ["payment_providers"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("payment_providers")

    @admin.display(description="Payment providers")
    def provider_names(self, obj: Region) -> str:
        return ", ".join(str(p) for p in obj.payment_providers.all()) or "-"


class ProductPriceInline(admin.TabularInline):
    model = ProductPrice
    extra = 1


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "sku", "id", "created_at"]
    search_fields = ["title", "sku", "id"]
    inlines = [ProductPriceInline]


class LineItemInline(admin.TabularInline):
    model = LineItem
    extra = 0
    fields = readonly_fields = ("id", "title", "unit_price", "quantity")
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "region",
        "email",
        "type",
        "payment_authorized_at",
        "completed_at",
        "created_at",
    ]
    list_filter = ["type", "region", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "email", "idempotency_key"]
    list_select_related = ["region"]
    readonly_fields = ["idempotency_key", "payment_authorized_at", "completed_at", "currency_code"]
    inlines = [LineItemInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "email",
        "region",
        "total_display",
        "status",
        "payment_status",
        "created_at",
    ]
    list_filter = ["payment_status", "status", "region", "payments__provider", "created_at"]
    search_fields = ["id", "email", "cart__id", "payments__id"]
    list_select_related = ["region"]
    date_hierarchy = "created_at"
    readonly_fields = ["cart", "region", "currency_code", "total", "payment_status", "created_at"]
    total_display = money_column("total", "Total")
