"""Admin registrations of the payment domain: readable rows, money in its currency."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from payments.models import (
    IdempotencyKey,
    Payment,
    PaymentEvent,
    PaymentProvider,
    PaymentSession,
    Refund,
)
from payments.money import format_money
from providers.registry import ProviderNotConfigured, get_provider


def money_column(field: str, label: str):  # type: ignore[no-untyped-def]
    @admin.display(description=label, ordering=field)
    def column(self, obj):  # type: ignore[no-untyped-def]
        return format_money(getattr(obj, field), obj.currency_code)

    return column


class ReadOnlyAdmin(admin.ModelAdmin):
    """Provider data and the ledger are written by services only."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(PaymentProvider)
class PaymentProviderAdmin(ReadOnlyAdmin):
    list_display = ["id", "is_installed", "region_names"]
    list_filter = ["is_installed"]
    search_fields = ["id"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("regions")

    @admin.display(description="Regions")
    def region_names(self, obj: PaymentProvider) -> str:
        return ", ".join(r.name for r in obj.regions.all()) or "-"


@admin.register(PaymentSession)
class PaymentSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "cart",
        "provider",
        "status",
        "is_selected",
        "amount_display",
        "created_at",
    ]
    list_filter = ["provider", "status", "is_selected"]
    search_fields = ["id", "cart__id"]
    list_select_related = ["cart", "provider"]
    amount_display = money_column("amount", "Amount")


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "created_at",
        "type",
        "success",
        "amount",
        "actor",
        "provider_reference",
        "error",
    )

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = readonly_fields = ("id", "amount", "reason", "note", "created_at")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "order",
        "provider",
        "amount_display",
        "captured_display",
        "refunded_display",
        "captured_at",
        "canceled_at",
        "created_at",
    ]
    list_filter = [
        "provider",
        ("captured_at", admin.EmptyFieldListFilter),
        ("canceled_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["id", "order__id", "cart__id", "order__email"]
    list_select_related = ["order", "provider"]
    inlines = [RefundInline, PaymentEventInline]
    readonly_fields = ["provider_references"]
    amount_display = money_column("amount", "Authorized")
    captured_display = money_column("amount_captured", "Captured")
    refunded_display = money_column("amount_refunded", "Refunded")

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_staff

    @admin.display(description="At the provider")
    def provider_references(self, payment: Payment) -> str:
        """The provider's own ids (PayPal's order and capture, Klarna's order and fraud
        review, Stripe's intent), linked to its dashboard where it has one."""
        try:
            references = get_provider(payment.provider_id).references(payment.data)
        except ProviderNotConfigured:
            return "-"
        return (
            format_html_join(
                mark_safe("<br>"),
                "{}: {}",
                (
                    (
                        ref.label,
                        format_html('<a href="{}" rel="noopener">{}</a>', ref.url, ref.value),
                    )
                    if ref.url
                    else (ref.label, ref.value)
                    for ref in references
                ),
            )
            or "-"
        )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ["id", "payment", "order", "amount_display", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["id", "payment__id", "order__id"]
    list_select_related = ["payment", "order"]

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_money(obj.amount, obj.payment.currency_code)


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "type",
        "success",
        "provider",
        "payment",
        "session_id",
        "amount",
        "actor",
    ]
    list_filter = ["type", "success", "provider", "actor"]
    search_fields = ["id", "payment__id", "session_id", "cart_id", "provider_reference"]
    list_select_related = ["payment", "provider"]
    date_hierarchy = "created_at"


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = [
        "key",
        "scope",
        "request_method",
        "request_path",
        "recovery_point",
        "response_code",
        "locked_at",
        "created_at",
    ]
    list_filter = ["scope", "recovery_point"]
    search_fields = ["key", "resource_id", "request_path"]
    exclude = ["response_body"]


# API tokens (SPEC section 10) ------------------------------------------------------------
# DRF's own TokenAdmin lists every key to anyone with `view_tokenproxy`, and a key is as good
# as its owner's password on /api/admin/. Only a superuser, who could make any token anyway,
# sees or manages them; `manage.py drf_create_token <user>` stays the way to issue one.
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class SuperuserTokenAdmin(TokenAdmin):
    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser
