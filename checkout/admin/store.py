"""Regions and their providers, the catalogue, carts, swaps, and the team's logins."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from checkout.models import Cart, LineItem, Product, ProductPrice, Region, Swap
from payments.admin import ReadOnlyAdmin
from payments.models import PaymentProvider
from payments.money import format_money


class RegionForm(forms.ModelForm):
    """Providers as checkboxes: installed ones only, so an uninstalled one cannot be enabled."""

    payment_providers = forms.ModelMultipleChoiceField(
        queryset=PaymentProvider.objects.filter(is_installed=True),
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        required=False,
    )

    class Meta:
        model = Region
        fields = ["name", "currency_code", "payment_providers"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        missing = list(
            PaymentProvider.objects.filter(is_installed=False).values_list("id", flat=True)
        )
        if missing:
            self.fields["payment_providers"].help_text = (
                f"Not installed, so not offered: {', '.join(missing)}. "
                "Add them to PAYMENT_PROVIDERS and run register_providers."
            )


@admin.register(Region)
class RegionAdmin(ModelAdmin):
    form = RegionForm
    list_display = ["name", "currency_code", "provider_names"]
    list_filter = ["currency_code", "payment_providers"]
    search_fields = ["name", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Region]:
        return super().get_queryset(request).prefetch_related("payment_providers")

    def get_readonly_fields(self, request: HttpRequest, obj: Region | None = None) -> Any:
        # Carts were priced in the region's currency: it cannot change under them.
        if obj is not None and obj.carts.exists():
            return ["currency_code"]
        return []

    @admin.display(description="Payment providers")
    def provider_names(self, obj: Region) -> str:
        return ", ".join(str(p) for p in obj.payment_providers.all()) or "-"


class ProductPriceInline(TabularInline):
    model = ProductPrice
    extra = 1


@admin.register(Product)
class ProductAdmin(ModelAdmin):
    list_display = ["title", "sku", "id", "created_at"]
    search_fields = ["title", "sku", "id"]
    inlines = [ProductPriceInline]


class LineItemInline(TabularInline):
    model = LineItem
    extra = 0
    fields = readonly_fields = ("id", "title", "unit_price_display", "quantity", "total_display")
    can_delete = False

    @admin.display(description="Unit price")
    def unit_price_display(self, item: LineItem) -> str:
        return format_money(item.unit_price, item.cart.currency_code)

    @admin.display(description="Total")
    def total_display(self, item: LineItem) -> str:
        return format_money(item.total, item.cart.currency_code)

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).select_related("cart")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Cart)
class CartAdmin(ReadOnlyAdmin):
    """Carts change through the storefront's services only (they reprice and release
    sessions at their providers); here they are read."""

    list_display = ["id", "region", "email", "type", "completed_at", "created_at"]
    list_filter = ["type", "region", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "email", "idempotency_key"]
    list_select_related = ["region"]
    readonly_fields = ["idempotency_key", "payment_authorized_at", "completed_at", "currency_code"]
    inlines = [LineItemInline]


@admin.register(Swap)
class SwapAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "difference", "status", "payment_status", "created_at"]
    list_filter = ["status", "payment_status"]
    search_fields = ["id", "order__id", "order__email"]
    list_select_related = ["order"]

    @admin.display(description="Difference due")
    def difference(self, swap: Swap) -> str:
        return format_money(swap.difference_due, swap.order.currency_code)


# The team's logins, in the same theme (Django's own admins would render unstyled in it).
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass
