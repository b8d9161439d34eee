"""Capturing many orders at once: a confirmation that says what each order will capture and
which cannot be, then what each captured and the totals."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from checkout.models import Order
from checkout.orders import order_capture
from payments import errors
from payments.audit import staff_action_log
from payments.models import Payment
from payments.money import format_money
from payments.services import Actor


def _plan(order: Order) -> tuple[int, str]:
    """What capturing this order in full would capture now, or why it cannot."""
    payments: list[Payment] = order.bulk_payments  # type: ignore[attr-defined]
    if order.status == Order.Status.CANCELED:
        return 0, "The order is canceled."
    live = [p for p in payments if p.canceled_at is None]
    if not live:
        return 0, "No live payment: its authorizations were canceled."
    to_capture = [p for p in live if p.captured_at is None]
    if not to_capture:
        return 0, "Already captured; nothing is left to capture."
    amount = sum(p.capturable_amount for p in to_capture)
    if not amount:
        return 0, "A capture or cancel is settling at the provider."
    return amount, ""


def _totals(rows: list[tuple[str, int]]) -> list[str]:
    by_currency: dict[str, int] = defaultdict(int)
    for currency, amount in rows:
        by_currency[currency] += amount
    return [format_money(amount, code) for code, amount in sorted(by_currency.items())]


def _with_payments(queryset: QuerySet[Order]) -> list[Order]:
    payments = Payment.objects.prefetch_related("operations", "refunds").order_by("created_at")
    return list(
        queryset.prefetch_related(
            Prefetch("payments", queryset=payments, to_attr="bulk_payments")
        ).order_by("created_at")
    )


@admin.action(description="Capture selected orders", permissions=["capture"])
def capture_orders_action(
    model_admin: Any, request: HttpRequest, queryset: QuerySet[Order]
) -> HttpResponse | None:
    """Confirm first; then capture each order in full and show one result per order."""
    orders = _with_payments(queryset)
    base = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta}
    if request.POST.get("confirmed") != "yes":
        rows: list[dict[str, Any]] = []
        for order in orders:
            amount, blocked = _plan(order)
            rows.append(
                {
                    "order": order,
                    "total": format_money(order.total, order.currency_code),
                    "status": order.get_payment_status_display(),
                    "capture": format_money(amount, order.currency_code) if amount else "",
                    "blocked": blocked,
                    "amount": amount,
                }
            )
        context = {
            **base,
            "title": "Capture selected orders",
            "rows": rows,
            "capturable": [r for r in rows if not r["blocked"]],
            "totals": _totals(
                [(r["order"].currency_code, r["amount"]) for r in rows if not r["blocked"]]
            ),
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "request_key": uuid.uuid4().hex,
        }
        return TemplateResponse(request, "admin/checkout/order/capture_orders.html", context)
    actor = Actor.for_user(request.user)
    # Made when the confirmation page was shown: sending it twice captures once.
    request_key = request.POST.get("request_key", "")[:64]
    results: list[dict[str, Any]] = []
    for order in orders:
        before = sum(p.amount_captured for p in order.bulk_payments)  # type: ignore[attr-defined]
        try:
            order_capture(
                order_id=order.id, actor=actor, request_key=f"admin-bulk:{request_key}:{order.id}"
            )
        except errors.DomainError as error:
            results.append({"order": order, "ok": False, "note": error.message, "amount": 0})
            continue
        after = Payment.objects.filter(order=order).values_list("amount_captured", flat=True)
        amount = sum(after) - before
        results.append(
            {
                "order": order,
                "ok": True,
                "note": f"Captured {format_money(amount, order.currency_code)}",
                "amount": amount,
            }
        )
        staff_action_log(user=request.user, obj=order, message="Captured in full (bulk action).")
    context = {
        **base,
        "title": "Capture results",
        "results": results,
        "captured_count": sum(1 for r in results if r["ok"]),
        "failed_count": sum(1 for r in results if not r["ok"]),
        "totals": _totals([(r["order"].currency_code, r["amount"]) for r in results if r["ok"]]),
    }
    return TemplateResponse(request, "admin/checkout/order/capture_results.html", context)
