"""Orders: the list an operator searches, and the order page as their single view of it
(line items, customer, payments with their money actions, refunds, swaps, the timeline of
every provider call and the History of what staff did)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from checkout.admin.bulk_capture import capture_orders_action
from checkout.admin.timeline import OPERATION_WORDS, STATUS_WORDS, timeline, when
from checkout.models import Order, Swap
from payments.admin import ListToolsAdmin, money_column
from payments.admin.base import DayRangeFilter
from payments.admin.money_pages import MONEY_ACTIONS, money_page
from payments.models import Payment, PaymentOperation, PaymentProvider, Refund
from payments.money import format_money

PAYMENT_STATUS_WORDS = {
    "not_paid": "Not paid",
    "awaiting": "Awaiting capture",
    "partially_captured": "Partly captured",
    "captured": "Captured",
    "partially_refunded": "Part refunded",
    "refunded": "Refunded",
    "canceled": "Canceled",
    "requires_action": "Needs action",
}


def payment_status_words(order: Order, payments: list[Payment]) -> str:
    """The order's payment status as an operator reads it: a partial capture that released
    the rest is done, not half-way."""
    live = [p for p in payments if p.canceled_at is None]
    if (
        order.payment_status == Order.PaymentStatus.PARTIALLY_CAPTURED
        and live
        and all(p.captured_at is not None for p in live)
    ):
        return "Captured, rest released"
    return PAYMENT_STATUS_WORDS.get(order.payment_status, order.payment_status)


class PaymentProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(p, p) for p in PaymentProvider.objects.values_list("id", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        if self.value():
            return queryset.filter(
                pk__in=Payment.objects.filter(provider_id=self.value()).values("order_id")
            )
        return queryset


@admin.register(Order)
class OrderAdmin(ListToolsAdmin):
    list_display = [
        "id",
        "email",
        "total_display",
        "paid_display",
        "refunded_display",
        "payment_column",
        "status",
        "created",
    ]
    list_filter = [
        "payment_status",
        "status",
        PaymentProviderFilter,
        "region",
        ("created_at", DayRangeFilter),
    ]
    search_fields = [
        "id",
        "email",
        "cart__id",
        "payments__id",
        "payments__events__provider_reference",
    ]
    fields = readonly_fields = (
        "customer",
        "region",
        "cart_link",
        "total_display",
        "status",
        "payment_column",
        "created",
    )
    actions = ["capture_orders"]
    change_form_template = "admin/checkout/order/change_form.html"
    total_display = money_column("total", "Total")
    totals = (("Total", "total"),)
    csv_name = "orders"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        live = Payment.objects.only(
            "id",
            "order_id",
            "amount",
            "amount_captured",
            "amount_refunded",
            "currency_code",
            "captured_at",
            "canceled_at",
        )
        return (
            super()
            .get_queryset(request)
            .select_related("region")
            .prefetch_related(Prefetch("payments", queryset=live, to_attr="payment_rows"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from completed carts

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an order changes only through its money actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # Columns ----------------------------------------------------------------------------

    def _payments(self, order: Order) -> list[Payment]:
        rows = getattr(order, "payment_rows", None)
        return rows if rows is not None else list(order.payments.all())

    @admin.display(description="Paid")
    def paid_display(self, order: Order) -> str:
        paid = sum(p.amount_captured for p in self._payments(order))
        return format_money(paid, order.currency_code)

    @admin.display(description="Refunded")
    def refunded_display(self, order: Order) -> str:
        refunded = sum(p.amount_refunded for p in self._payments(order))
        return format_money(refunded, order.currency_code)

    @admin.display(description="Payment", ordering="payment_status")
    def payment_column(self, order: Order) -> str:
        return payment_status_words(order, self._payments(order))

    @admin.display(description="Placed", ordering="created_at")
    def created(self, order: Order) -> str:
        return when(order.created_at)

    @admin.display(description="Customer")
    def customer(self, order: Order) -> str:
        return order.email or "(no email)"

    @admin.display(description="Cart")
    def cart_link(self, order: Order) -> str:
        url = reverse("admin:checkout_cart_change", args=[quote(order.cart_id)])
        return format_html('<a href="{}">{}</a>', url, order.cart_id)

    # Totals and CSV of the filtered rows ------------------------------------------------

    def filtered_totals(self, queryset: QuerySet[Any]) -> list[dict[str, Any]]:
        """Order totals, and what their payments captured and refunded, per currency: two
        aggregate queries over every filtered order."""
        orders = {
            row["currency_code"]: row
            for row in queryset.order_by()
            .values("currency_code")
            .annotate(total=Sum("total"))
            .order_by("currency_code")
        }
        moved: dict[str, dict[str, Any]] = {
            row["currency_code"]: dict(row)
            for row in Payment.objects.filter(order__in=queryset.order_by().values("pk"))
            .values("currency_code")
            .annotate(paid=Sum("amount_captured"), refunded=Sum("amount_refunded"))
            .order_by()
        }
        return [
            {
                "currency": code.upper(),
                "figures": [
                    ("Total", format_money(row["total"] or 0, code)),
                    ("Paid", format_money(moved.get(code, {}).get("paid") or 0, code)),
                    ("Refunded", format_money(moved.get(code, {}).get("refunded") or 0, code)),
                ],
            }
            for code, row in orders.items()
        ]

    def csv_queryset(self, queryset: QuerySet[Order]) -> QuerySet[Order]:
        return queryset

    def csv_columns(self) -> list[tuple[str, Any]]:
        def paid(order: Order) -> str:
            return format_money(
                sum(p.amount_captured for p in self._payments(order)), order.currency_code
            )

        def refunded(order: Order) -> str:
            return format_money(
                sum(p.amount_refunded for p in self._payments(order)), order.currency_code
            )

        return [
            ("id", lambda o: o.id),
            ("placed_at", lambda o: o.created_at.isoformat()),
            ("email", lambda o: o.email),
            ("region", lambda o: o.region.name),
            ("currency", lambda o: o.currency_code.upper()),
            ("total", lambda o: format_money(o.total, o.currency_code)),
            ("paid", paid),
            ("refunded", refunded),
            ("total_minor_units", lambda o: o.total),
            ("payment_status", lambda o: o.payment_status),
            ("status", lambda o: o.status),
        ]

    # The order page ---------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # Through get_queryset and the view permission, as the admin's own view does; the
        # admin quotes ids in its URLs (`_` becomes `_5F`).
        order = self.get_object(request, unquote(object_id))
        if order is None or not self.has_view_permission(request, order):
            return super().change_view(request, object_id, form_url, extra_context)
        context = {**(extra_context or {}), **self._order_page(request, order)}
        return super().change_view(request, object_id, form_url, context)

    def _order_page(self, request: HttpRequest, order: Order) -> dict[str, Any]:
        money = order.currency_code
        payments = list(
            Payment.objects.filter(Q(order=order) | Q(swap__order=order))
            .select_related("provider")
            .prefetch_related("operations", "refunds")
            .order_by("created_at", "id")
        )
        user = request.user

        def action_url(payment: Payment, action: str) -> str:
            return reverse(
                "admin:checkout_order_money_action", args=[quote(order.pk), payment.pk, action]
            )

        operations = PaymentOperation.objects.filter(
            Q(payment__in=payments) | Q(cart_id=order.cart_id)
        ).order_by("created_at", "id")
        history = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Order), object_id=order.pk
        ).select_related("user")
        items = list(order.cart.items.all())
        return {
            "items": [
                {
                    "title": item.title,
                    "quantity": item.quantity,
                    "unit_price": format_money(item.unit_price, money),
                    "total": format_money(item.total, money),
                }
                for item in items
            ],
            "items_total": format_money(sum(item.total for item in items), money),
            "cart_url": reverse("admin:checkout_cart_change", args=[quote(order.cart_id)]),
            "payments": [
                {
                    "payment": p,
                    "url": reverse("admin:payments_payment_change", args=[quote(p.pk)]),
                    "authorized": format_money(p.amount, p.currency_code),
                    "captured": format_money(p.amount_captured, p.currency_code),
                    "refunded": format_money(p.amount_refunded, p.currency_code),
                    "expires": when(p.authorization_expires_at)
                    if p.authorization_expires_at and p.captured_at is None and not p.canceled_at
                    else "",
                    "state": _payment_state(p),
                    "capture_url": action_url(p, "capture")
                    if p.can_capture() and user.has_perm("payments.capture_payment")
                    else "",
                    "refund_url": action_url(p, "refund")
                    if p.can_refund() and user.has_perm("payments.refund_payment")
                    else "",
                    "cancel_url": action_url(p, "cancel")
                    if p.can_cancel() and user.has_perm("payments.cancel_payment")
                    else "",
                }
                for p in payments
            ],
            "refunds": [
                {
                    "refund": r,
                    "url": reverse("admin:payments_refund_change", args=[quote(r.pk)]),
                    "amount": format_money(r.amount, money),
                    "when": when(r.created_at),
                }
                for r in Refund.objects.filter(payment__in=payments).order_by("created_at")
            ],
            "swaps": [
                {
                    "swap": s,
                    "url": reverse("admin:checkout_swap_change", args=[quote(s.pk)]),
                    "difference": format_money(s.difference_due, money),
                }
                for s in Swap.objects.filter(order=order).order_by("created_at")
            ],
            "timeline": timeline(list(operations), {p.pk: p.amount for p in payments}, money),
            "history": [
                {
                    "when": when(e.action_time),
                    "who": e.user.get_username(),
                    "what": e.get_change_message(),
                }
                for e in history.order_by("-action_time")[:20]
            ],
            "history_url": reverse("admin:checkout_order_history", args=[quote(order.pk)]),
        }

    # Money pages and bulk capture -------------------------------------------------------

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<str:order_id>/payments/<str:payment_id>/<str:action>/",
                self.admin_site.admin_view(self.money_action_view),
                name="checkout_order_money_action",
            ),
            *super().get_urls(),
        ]

    def money_action_view(
        self, request: HttpRequest, order_id: str, payment_id: str, action: str
    ) -> HttpResponse:
        """Capture, refund or cancel one payment of the order, after a confirmation page."""
        # The order as this operator may see it (get_queryset), then its payment.
        order = self.get_object(request, unquote(order_id))
        if order is None or not self.has_view_permission(request, order):
            # The money permission is checked first by money_page; an operator without it
            # gets 403 whatever the order, one with it but blind to the order gets 404.
            spec = MONEY_ACTIONS.get(action)
            if spec is None or not request.user.has_perm(spec.permission):
                raise PermissionDenied
            raise Http404("No such order.")
        order_url = reverse("admin:checkout_order_change", args=[quote(order.pk)])
        return money_page(
            model_admin=self,
            request=request,
            payments=Payment.objects.filter(Q(order=order) | Q(swap__order=order)),
            payment_id=payment_id,
            action=action,
            back_url=order_url,
            breadcrumbs=[
                ("Orders", reverse("admin:checkout_order_changelist")),
                (order.pk, order_url),
            ],
        )

    capture_orders = capture_orders_action

    def has_capture_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.capture_payment")


def _payment_state(payment: Payment) -> str:
    if payment.canceled_at:
        return "Canceled"
    open_operations = payment.open_operations()
    if open_operations:
        # In flight, in the timeline's words: sent, settling later, or its answer lost.
        return "; ".join(
            f"{OPERATION_WORDS[op.type]}: {STATUS_WORDS[op.status].lower()}"
            for op in open_operations
        )
    if payment.captured_at is None:
        return "Authorized"
    if payment.amount_captured < payment.amount:
        return "Captured, rest released"
    return "Captured"
