"""The back office's home: what needs doing today and the store's figures at a glance.

Every figure comes from a handful of aggregate queries, grouped by currency (amounts in two
currencies are never added up), so the page costs the same whatever the number of orders:
tests/checkout/test_dashboard.py bounds it. Money moved is counted by the operations that
succeeded, on the day they were asked for (`created_at`, indexed), not by rows' totals.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from payments.models import OperationType, Payment, PaymentOperation, WebhookEvent
from payments.money import format_money, to_major

EXPIRY_HORIZON = timedelta(hours=48)
CHART_DAYS = 30

Succeeded = PaymentOperation.Status.SUCCEEDED


def _by_currency(rows: dict[str, int]) -> list[str]:
    return [format_money(amount, code) for code, amount in sorted(rows.items()) if amount]


def awaiting_capture(now: Any) -> dict[str, Any]:
    """Live authorizations not captured yet, and those the provider lets lapse within 48 h:
    one query."""
    soon = Q(authorization_expires_at__lte=now + EXPIRY_HORIZON)
    rows = list(
        Payment.objects.filter(captured_at__isnull=True, canceled_at__isnull=True)
        .values("currency_code")
        .annotate(
            count=Count("id"),
            total_amount=Sum("amount"),
            expiring=Count("id", filter=soon),
            expiring_amount=Sum("amount", filter=soon),
        )
        .order_by("currency_code")
    )
    return {
        "count": sum(r["count"] for r in rows),
        "amounts": _by_currency({r["currency_code"]: r["total_amount"] or 0 for r in rows}),
        "expiring": sum(r["expiring"] for r in rows),
        "expiring_amounts": _by_currency(
            {r["currency_code"]: r["expiring_amount"] or 0 for r in rows}
        ),
    }


def attention() -> dict[str, int]:
    """Failed webhooks and operations whose outcome nobody knows yet: two counts, each on a
    partial index (webhook_due_idx, operation_open_idx)."""
    return {
        "failed_webhooks": WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).count(),
        "unanswered": PaymentOperation.objects.filter(
            status__in=PaymentOperation.UNRESOLVED
        ).count(),
    }


def money_moved(now: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Captured and refunded, today and this week, per currency; and the 30 days' chart:
    one query over the succeeded captures and refunds of the last 30 days."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    since = today - timedelta(days=CHART_DAYS - 1)
    rows = list(
        PaymentOperation.objects.filter(
            created_at__gte=min(since, week),
            status=Succeeded,
            type__in=[OperationType.CAPTURE, OperationType.REFUND],
            payment__isnull=False,
        )
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "type", "payment__currency_code")
        .annotate(moved=Sum("amount"))
        .order_by("day")
    )
    figures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict[tuple[str, str], dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        code, kind, day, amount = (
            row["payment__currency_code"],
            row["type"],
            row["day"],
            row["moved"] or 0,
        )
        if day >= today.date():
            figures[f"{kind}_today"][code] += amount
        if day >= week.date():
            figures[f"{kind}_week"][code] += amount
        if day >= since.date():
            daily[(kind, code)][day] += amount
    totals = {
        name: _by_currency(figures[name])
        for name in ("capture_today", "capture_week", "refund_today", "refund_week")
    }
    days = [since.date() + timedelta(days=n) for n in range(CHART_DAYS)]
    palette = {
        "capture": ["#7c3aed", "#2563eb", "#0891b2"],
        "refund": ["#f97316", "#e11d48", "#ca8a04"],
    }
    datasets = []
    for index, ((kind, code), by_day) in enumerate(sorted(daily.items())):
        colors = palette[kind]
        datasets.append(
            {
                "label": f"{'Captured' if kind == 'capture' else 'Refunded'} ({code.upper()})",
                "data": [float(to_major(by_day.get(day, 0), code)) for day in days],
                "backgroundColor": colors[index % len(colors)],
            }
        )
    chart = {"labels": [day.strftime("%d %b") for day in days], "datasets": datasets}
    return totals, chart


def authorization_rates(now: Any) -> dict[str, Any]:
    """Authorizations that succeeded, of those the provider answered, per provider over 30
    days: one query."""
    rows = list(
        PaymentOperation.objects.filter(
            type=OperationType.AUTHORIZE,
            created_at__gte=now - timedelta(days=CHART_DAYS),
            status__in=[Succeeded, PaymentOperation.Status.FAILED],
        )
        .values("provider_id")
        .annotate(total=Count("id"), ok=Count("id", filter=Q(status=Succeeded)))
        .order_by("provider_id")
    )
    return {
        "rows": [
            {**row, "rate": round(100 * row["ok"] / row["total"]) if row["total"] else 0}
            for row in rows
        ],
        "chart": {
            "labels": [row["provider_id"] for row in rows],
            "datasets": [
                {
                    "label": "Authorized (%)",
                    "data": [round(100 * row["ok"] / row["total"], 1) for row in rows],
                    "backgroundColor": "#7c3aed",
                }
            ],
        },
    }


def dashboard_figures(now: Any = None) -> dict[str, Any]:
    now = now or timezone.now()
    totals, volume = money_moved(now)
    rates = authorization_rates(now)
    return {
        "awaiting": awaiting_capture(now),
        "attention": attention(),
        "moved": totals,
        "volume_chart": json.dumps(volume),
        "has_volume": bool(volume["datasets"]),
        "rates": rates["rows"],
        "rates_chart": json.dumps(rates["chart"]),
        "timezone": timezone.get_current_timezone_name(),
    }


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """unfold's hook for the admin's index page: the figures, to staff who may see orders."""
    if not request.user.has_perm("checkout.view_order"):
        return context
    links = {
        "awaiting": reverse("admin:checkout_order_changelist") + "?payment_status__exact=awaiting",
        "payments_awaiting": reverse("admin:payments_payment_changelist") + "?state=uncaptured",
        "failed_webhooks": reverse("admin:payments_webhookevent_changelist")
        + "?status__exact=failed",
        "unanswered": reverse("admin:payments_paymentoperation_changelist") + "?attention=open",
    }
    return {**context, "dashboard": dashboard_figures(), "dashboard_links": links}
