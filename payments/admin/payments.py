"""Payments, refunds, the event ledger and the operations that need an operator's eye."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from unfold.admin import TabularInline

from payments.admin.base import DayRangeFilter, ListToolsAdmin, ReadOnlyAdmin, money_column
from payments.admin.money_pages import MONEY_ACTIONS, money_page
from payments.models import (
    Payment,
    PaymentEvent,
    PaymentOperation,
    PaymentProvider,
    PaymentSession,
    Refund,
)
from payments.money import format_money
from providers.registry import ProviderNotConfigured, get_provider

OPERATION_WORDS = {
    "initiate": "Session opened",
    "update": "Session updated",
    "authorize": "Authorized",
    "capture": "Capture",
    "refund": "Refund",
    "cancel": "Cancel",
    "release": "Session released",
}


def order_link(order_id: str | None) -> str:
    if not order_id:
        return "-"
    url = reverse("admin:checkout_order_change", args=[quote(order_id)])
    return format_html('<a href="{}">{}</a>', url, order_id)


def payment_link(payment_id: str | None) -> str:
    if not payment_id:
        return "-"
    url = reverse("admin:payments_payment_change", args=[quote(payment_id)])
    return format_html('<a href="{}">{}</a>', url, payment_id)


def local(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"


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


class PaymentEventInline(TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "created_at",
        "type",
        "success",
        "amount_display",
        "actor",
        "provider_reference",
        "error",
    )

    @admin.display(description="Amount")
    def amount_display(self, event: PaymentEvent) -> str:
        return format_money(event.amount, event.payment.currency_code) if event.amount else "-"  # type: ignore[union-attr]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).select_related("payment")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class RefundInline(TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = readonly_fields = ("id", "amount_display", "reason", "note", "status", "created_at")

    @admin.display(description="Amount")
    def amount_display(self, refund: Refund) -> str:
        return format_money(refund.amount, refund.payment.currency_code)

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).select_related("payment")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class PaymentStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("uncaptured", "Awaiting capture"),
            ("captured", "Captured"),
            ("refunded", "Refunded (partly or fully)"),
            ("canceled", "Canceled"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payment]) -> QuerySet[Payment]:
        match self.value():
            case "uncaptured":
                return queryset.filter(captured_at__isnull=True, canceled_at__isnull=True)
            case "captured":
                return queryset.filter(captured_at__isnull=False)
            case "refunded":
                return queryset.filter(amount_refunded__gt=0)
            case "canceled":
                return queryset.filter(canceled_at__isnull=False)
        return queryset


@admin.register(Payment)
class PaymentAdmin(ListToolsAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "order_column",
        "provider",
        "amount_display",
        "captured_display",
        "refunded_display",
        "state",
        "created_at",
    ]
    list_filter = ["provider", PaymentStateFilter, ("created_at", DayRangeFilter)]
    search_fields = ["id", "order__id", "cart__id", "order__email"]
    list_select_related = ["provider"]
    inlines = [RefundInline, PaymentEventInline]
    fields = readonly_fields = (
        "id",
        "order_column",
        "cart",
        "provider",
        "currency_code",
        "amount_display",
        "captured_display",
        "refunded_display",
        "refundable_display",
        "expires",
        "provider_references",
        "captured_at",
        "canceled_at",
        "created_at",
    )
    change_form_before_template = "admin/backoffice/payment_actions.html"
    amount_display = money_column("amount", "Authorized")
    captured_display = money_column("amount_captured", "Captured")
    refunded_display = money_column("amount_refunded", "Refunded")
    totals = (
        ("Authorized", "amount"),
        ("Captured", "amount_captured"),
        ("Refunded", "amount_refunded"),
    )
    csv_name = "payments"

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_staff

    @admin.display(description="Order", ordering="order_id")
    def order_column(self, payment: Payment) -> str:
        return order_link(payment.order_id)

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

    @admin.display(description="State")
    def state(self, payment: Payment) -> str:
        if payment.canceled_at:
            return "Canceled"
        if payment.captured_at is None:
            return "Awaiting capture"
        if payment.amount_refunded:
            return (
                "Refunded"
                if payment.amount_refunded == payment.amount_captured
                else "Part refunded"
            )
        if payment.amount_captured < payment.amount:
            return "Captured, rest released"
        return "Captured"

    @admin.display(description="Can still be refunded")
    def refundable_display(self, payment: Payment) -> str:
        return format_money(payment.refundable_amount, payment.currency_code)

    @admin.display(description="Authorization expires")
    def expires(self, payment: Payment) -> str:
        return (
            local(payment.authorization_expires_at) if payment.authorization_expires_at else "Never"
        )

    def csv_columns(self) -> list[tuple[str, Any]]:
        def major(field: str) -> Any:
            return lambda p: format_money(getattr(p, field), p.currency_code)

        return [
            ("id", lambda p: p.id),
            ("order", lambda p: p.order_id or ""),
            ("provider", lambda p: p.provider_id),
            ("currency", lambda p: p.currency_code.upper()),
            ("authorized", major("amount")),
            ("captured", major("amount_captured")),
            ("refunded", major("amount_refunded")),
            ("authorized_minor_units", lambda p: p.amount),
            ("captured_minor_units", lambda p: p.amount_captured),
            ("refunded_minor_units", lambda p: p.amount_refunded),
            ("state", self.state),
            ("created_at", lambda p: p.created_at.isoformat()),
        ]

    # Money actions on the payment's own page, through the same pages as an order's.

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/money/<str:action>/",
                self.admin_site.admin_view(self.money_action_view),
                name="payments_payment_money_action",
            ),
            *super().get_urls(),
        ]

    def money_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        payment_id = unquote(object_id)
        back = reverse("admin:payments_payment_change", args=[quote(payment_id)])
        return money_page(
            model_admin=self,
            request=request,
            payments=self.get_queryset(request),
            payment_id=payment_id,
            action=action,
            back_url=back,
            breadcrumbs=[
                ("Payments", reverse("admin:payments_payment_changelist")),
                (payment_id, back),
            ],
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        payment = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if payment is not None:
            context["money_actions"] = [
                (
                    action,
                    spec.verb,
                    reverse(
                        "admin:payments_payment_money_action", args=[quote(payment.pk), action]
                    ),
                )
                for action, spec in MONEY_ACTIONS.items()
                if request.user.has_perm(spec.permission) and _possible(payment, action)
            ]
        return super().change_view(request, object_id, form_url, context)


def _possible(payment: Payment, action: str) -> bool:
    return {
        "capture": payment.can_capture,
        "refund": payment.can_refund,
        "cancel": payment.can_cancel,
    }[action]()


@admin.register(Refund)
class RefundAdmin(ListToolsAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "payment_column",
        "order_column",
        "amount_display",
        "reason",
        "status",
        "created_at",
    ]
    list_filter = ["reason", "status", ("created_at", DayRangeFilter)]
    search_fields = ["id", "payment__id", "order__id", "order__email"]
    list_select_related = ["payment"]
    totals = (("Refunded", "amount"),)
    currency_lookup = "payment__currency_code"
    csv_name = "refunds"

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_money(obj.amount, obj.payment.currency_code)

    @admin.display(description="Payment", ordering="payment_id")
    def payment_column(self, refund: Refund) -> str:
        return payment_link(refund.payment_id)

    @admin.display(description="Order", ordering="order_id")
    def order_column(self, refund: Refund) -> str:
        return order_link(refund.order_id)

    def csv_queryset(self, queryset: QuerySet[Refund]) -> QuerySet[Refund]:
        return queryset.select_related("payment")

    def csv_columns(self) -> list[tuple[str, Any]]:
        return [
            ("id", lambda r: r.id),
            ("payment", lambda r: r.payment_id),
            ("order", lambda r: r.order_id or ""),
            ("currency", lambda r: r.payment.currency_code.upper()),
            ("amount", lambda r: format_money(r.amount, r.payment.currency_code)),
            ("amount_minor_units", lambda r: r.amount),
            ("reason", lambda r: r.reason),
            ("status", lambda r: r.status),
            ("note", lambda r: r.note),
            ("created_at", lambda r: r.created_at.isoformat()),
        ]


def _currency_of_subject() -> Any:
    """A ledger row's or operation's currency: its payment's, else its session's."""
    session = PaymentSession.objects.filter(id=OuterRef("session_id")).values("currency_code")
    return Coalesce(F("payment__currency_code"), Subquery(session[:1]))


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "type",
        "success",
        "provider",
        "payment",
        "amount_display",
        "actor",
    ]
    list_filter = ["type", "success", "provider", "actor", ("created_at", DayRangeFilter)]
    list_filter_submit = True
    search_fields = ["id", "payment__id", "session_id", "cart_id", "provider_reference"]
    list_select_related = ["payment", "provider"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PaymentEvent]:
        return super().get_queryset(request).annotate(currency=_currency_of_subject())

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, event: Any) -> str:
        if event.amount is None or not event.currency:
            return "-"
        return format_money(event.amount, event.currency)


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("open", "Outcome unknown (requested, unknown)"),
            ("pending", "Settling at the provider"),
            ("failed", "Refused by the provider"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[PaymentOperation]
    ) -> QuerySet[PaymentOperation]:
        match self.value():
            case "open":
                return queryset.filter(status__in=PaymentOperation.UNRESOLVED)
            case "pending":
                return queryset.filter(status=PaymentOperation.Status.PENDING)
            case "failed":
                return queryset.filter(status=PaymentOperation.Status.FAILED)
        return queryset


@admin.register(PaymentOperation)
class PaymentOperationAdmin(ReadOnlyAdmin):
    """Every provider call; filtered to those whose outcome nobody knows yet, the list an
    operator checks when the worker has not settled them."""

    list_display = [
        "created_at",
        "what",
        "payment_column",
        "provider",
        "amount_display",
        "status",
        "attempts",
        "actor",
    ]
    list_filter = [AttentionFilter, "type", "provider", ("created_at", DayRangeFilter)]
    list_filter_submit = True
    search_fields = ["id", "payment__id", "session_id", "cart_id", "idempotency_key"]
    list_select_related = ["provider"]
    exclude = ["params"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PaymentOperation]:
        return super().get_queryset(request).annotate(currency=_currency_of_subject())

    @admin.display(description="What", ordering="type")
    def what(self, operation: PaymentOperation) -> str:
        return OPERATION_WORDS.get(operation.type, operation.type)

    @admin.display(description="Payment", ordering="payment_id")
    def payment_column(self, operation: PaymentOperation) -> str:
        return payment_link(operation.payment_id)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, operation: Any) -> str:
        if operation.amount is None or not operation.currency:
            return "-"
        return format_money(operation.amount, operation.currency)
