"""The store operator's back office, on Django's own admin.

Money actions (capture, refund, cancel, bulk capture) each have their own confirmation page
behind their model permission and call the same services as the admin API; a provider
failure or a refused amount comes back as an admin message, never an error page.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from checkout.api.serializers import render_completion
from checkout.models import Cart, LineItem, Order, Product, ProductPrice, Region, Swap
from checkout.orders import order_capture
from checkout.webhooks import webhook_process
from payments import errors
from payments.admin import ReadOnlyAdmin, money_column
from payments.api.idempotent import idempotent_response
from payments.audit import staff_action_log
from payments.idempotency import IdempotentRequest, fingerprint
from payments.models import (
    Payment,
    PaymentOperation,
    PaymentProvider,
    Refund,
    WebhookEvent,
)
from payments.money import MAX_AMOUNT, currency_exponent, format_money, to_major
from payments.services import Actor, payment_cancel, payment_capture, payment_refund

admin.site.site_header = "Payments back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Store operations"

# Regions ------------------------------------------------------------------------------


class RegionForm(forms.ModelForm):
    """Providers as checkboxes: installed ones only, so an uninstalled one cannot be enabled."""

    payment_providers = forms.ModelMultipleChoiceField(
        queryset=PaymentProvider.objects.filter(is_installed=True),
        widget=forms.CheckboxSelectMultiple,
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
class RegionAdmin(admin.ModelAdmin):
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


# Catalogue and carts ------------------------------------------------------------------


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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Cart)
class CartAdmin(ReadOnlyAdmin):
    """Carts change through the storefront's services only (they reprice and release
    sessions at their providers); here they are read."""

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


# Orders -------------------------------------------------------------------------------


class BoundedDecimalField(forms.DecimalField):
    """A decimal whose text is bounded before Decimal() sees it, and whose digits are bounded
    before anyone converts it: `1E+999990` is refused here, not after int() has spent half
    a minute on it (SPEC section 10)."""

    MAX_LENGTH = 32

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and len(value.strip()) > self.MAX_LENGTH:
            raise forms.ValidationError("Enter a shorter number.", code="max_length")
        return super().to_python(value)


class AmountForm(forms.Form):
    """An amount typed in the currency's major units (12.34), sent on in minor units."""

    # At most 10^12 minor units (13 digits for a currency without decimals) and at most 3
    # decimals (kwd has 3), checked by the field before clean_amount converts anything.
    amount = BoundedDecimalField(min_value=Decimal(0), max_digits=16, decimal_places=3)
    # Made when the page is shown: submitting the same page twice is one operation, and the
    # key is bound to what the page submitted (see OrderAdmin._run_money_action).
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, currency_code: str, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency_code = currency_code
        self.fields[
            "amount"
        ].help_text = f"In {currency_code.upper()}, at most {format_money(limit, currency_code)}."

    def clean_amount(self) -> int:
        exponent = currency_exponent(self.currency_code)
        amount = self.cleaned_data["amount"].scaleb(exponent)
        if amount != amount.to_integral_value():
            raise forms.ValidationError(f"{self.currency_code.upper()} has {exponent} decimals.")
        if amount <= 0:
            raise forms.ValidationError("Enter an amount above zero.")
        if amount > MAX_AMOUNT:
            raise forms.ValidationError("This amount is larger than any payment.")
        return int(amount)


class RefundForm(AmountForm):
    reason = forms.ChoiceField(choices=Refund.Reason.choices, initial=Refund.Reason.RETURN)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000
    )


class CancelForm(forms.Form):
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)


MONEY_ACTIONS = {
    # action: (permission, form, verb shown to the operator)
    "capture": ("payments.capture_payment", AmountForm, "Capture"),
    "refund": ("payments.refund_payment", RefundForm, "Refund"),
    "cancel": ("payments.cancel_payment", CancelForm, "Cancel authorization"),
}


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


# The order page's timeline, in an operator's words.

OPERATION_WORDS = {
    "initiate": "Payment session opened",
    "update": "Payment session updated",
    "authorize": "Payment authorized",
    "capture": "Captured",
    "refund": "Refunded",
    "cancel": "Authorization canceled",
    "release": "Unused payment session released",
}
STATUS_WORDS = {
    "requested": "Sent; waiting for the provider's answer",
    "pending": "Accepted by the provider; it settles later",
    "succeeded": "Done",
    "failed": "Refused by the provider",
    "unknown": "Answer lost; the worker asks the provider again",
}
ACTOR_WORDS = {"storefront": "Customer", "system": "Worker", "webhook": "Provider notice"}


def operation_in_words(operation: PaymentOperation, currency_code: str) -> dict[str, str]:
    """One timeline line as an operator reads it, not as the code names it."""
    return {
        "when": f"{operation.created_at:%Y-%m-%d %H:%M:%S} UTC",
        "who": ACTOR_WORDS.get(operation.actor, operation.actor),
        "what": OPERATION_WORDS.get(operation.type, operation.type),
        "provider": operation.provider_id,
        "amount": format_money(operation.amount, currency_code) if operation.amount else "",
        "status": operation.status,
        "result": STATUS_WORDS.get(operation.status, operation.status),
        "error": operation.error if operation.status == "failed" else "",
        "reference": operation.provider_reference,
    }


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "email",
        "region",
        "total_display",
        "paid_display",
        "refunded_display",
        "payment_status",
        "status",
        "created_at",
    ]
    list_filter = ["payment_status", "status", PaymentProviderFilter, "region", "created_at"]
    search_fields = [
        "id",
        "email",
        "cart__id",
        "payments__id",
        "payments__events__provider_reference",
    ]
    list_select_related = ["region"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "cart",
        "region",
        "email",
        "currency_code",
        "total_display",
        "status",
        "payment_status",
        "created_at",
    )
    actions = ["capture_orders"]
    change_form_template = "admin/checkout/order/change_form.html"
    total_display = money_column("total", "Total")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        live = Payment.objects.only(
            "id", "order_id", "amount_captured", "amount_refunded", "currency_code"
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("payments", queryset=live, to_attr="payment_rows"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from completed carts

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an order changes only through its money actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Paid")
    def paid_display(self, order: Order) -> str:
        rows = getattr(order, "payment_rows", None) or order.payments.all()
        return format_money(sum(p.amount_captured for p in rows), order.currency_code)

    @admin.display(description="Refunded")
    def refunded_display(self, order: Order) -> str:
        rows = getattr(order, "payment_rows", None) or order.payments.all()
        return format_money(sum(p.amount_refunded for p in rows), order.currency_code)

    # The order page: payments with their buttons, refunds, swaps, the timeline.

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # Through get_queryset and the view permission, as the admin's own view does; the
        # admin quotes ids in its URLs (`_` becomes `_5F`).
        order = self.get_object(request, unquote(object_id))
        if order is None or not self.has_view_permission(request, order):
            return super().change_view(request, object_id, form_url, extra_context)
        payments = list(
            Payment.objects.filter(Q(order=order) | Q(swap__order=order))
            .select_related("provider")
            .prefetch_related("operations", "refunds")
            .order_by("created_at", "id")
        )
        user = request.user
        context = {
            **(extra_context or {}),
            "payments": [
                {
                    "payment": p,
                    "authorized": format_money(p.amount, p.currency_code),
                    "captured": format_money(p.amount_captured, p.currency_code),
                    "refunded": format_money(p.amount_refunded, p.currency_code),
                    "can_capture": p.can_capture() and user.has_perm("payments.capture_payment"),
                    "can_refund": p.can_refund() and user.has_perm("payments.refund_payment"),
                    "can_cancel": p.can_cancel() and user.has_perm("payments.cancel_payment"),
                    "in_flight": ", ".join(
                        f"{OPERATION_WORDS[op.type].lower()}: {STATUS_WORDS[op.status].lower()}"
                        for op in p.open_operations()
                    ),
                }
                for p in payments
            ],
            "refunds": [
                (r, format_money(r.amount, order.currency_code))
                for r in Refund.objects.filter(payment__in=payments).order_by("created_at")
            ],
            "swaps": [
                (s, format_money(s.difference_due, order.currency_code))
                for s in Swap.objects.filter(order=order).order_by("created_at")
            ],
            "timeline": [
                operation_in_words(operation, order.currency_code)
                for operation in PaymentOperation.objects.filter(
                    Q(payment__in=payments) | Q(cart_id=order.cart_id)
                ).order_by("created_at", "id")
            ],
        }
        return super().change_view(request, object_id, form_url, context)

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
        if action not in MONEY_ACTIONS:
            raise PermissionDenied
        permission, form_class, verb = MONEY_ACTIONS[action]
        if not request.user.has_perm(permission):
            raise PermissionDenied
        # The order as this operator may see it (get_queryset), then its payment.
        order = self.get_object(request, unquote(order_id))
        if order is None or not self.has_view_permission(request, order):
            raise Http404("No such order.")
        payment = get_object_or_404(
            Payment.objects.filter(Q(order=order) | Q(swap__order=order)), pk=payment_id
        )
        order_url = reverse("admin:checkout_order_change", args=[quote(order.pk)])
        limit = payment.capturable_amount if action == "capture" else payment.refundable_amount
        kwargs = (
            {} if action == "cancel" else {"currency_code": payment.currency_code, "limit": limit}
        )
        if request.method == "POST":
            form = form_class(request.POST, **kwargs)
            if form.is_valid():
                try:
                    done = self._run_money_action(request, action, order, payment, form)
                except errors.IdempotencyKeyMismatch:
                    self.message_user(
                        request,
                        f"{verb} refused: this page was already submitted with another "
                        "amount, reason or note. Nothing more was done; open the action again "
                        "to make another one.",
                        messages.ERROR,
                    )
                    return HttpResponseRedirect(order_url)
                except errors.DomainError as error:
                    self.message_user(request, f"{verb} failed: {error.message}", messages.ERROR)
                    return HttpResponseRedirect(order_url)
                note = "done" if done else "already done by this page earlier"
                self.message_user(request, f"{verb}: {note} for {payment.id}.", messages.SUCCESS)
                return HttpResponseRedirect(order_url)
        else:
            initial: dict[str, Any] = {"request_key": uuid.uuid4().hex}
            if action != "cancel":
                initial["amount"] = to_major(limit, payment.currency_code)
            form = form_class(initial=initial, **kwargs)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} payment {payment.id}",
            "opts": self.model._meta,
            "form": form,
            "payment": payment,
            "verb": verb,
            "order_id": order.pk,
            "order_url": order_url,
            "authorized": format_money(payment.amount, payment.currency_code),
            "captured": format_money(payment.amount_captured, payment.currency_code),
            "refunded": format_money(payment.amount_refunded, payment.currency_code),
        }
        return TemplateResponse(request, "admin/checkout/order/money_action.html", context)

    def _run_money_action(
        self, request: HttpRequest, action: str, order: Order, payment: Payment, form: forms.Form
    ) -> bool:
        """Run the action once per confirmation page; False when the page had run already.

        The page's hidden request_key is an Idempotency-Key bound, like the admin API's, to
        what the page submitted: the same key with another amount, reason or note raises
        IdempotencyKeyMismatch instead of being merged into the first operation. A final
        answer (success or a refusal) is stored for the key; an unknown outcome (503) is not,
        so submitting the page again asks the provider again under the same key.
        """
        data = form.cleaned_data
        content = {name: value for name, value in data.items() if name != "request_key"}
        idempotent = IdempotentRequest(
            scope=f"admin-form:{request.user.pk}",
            key=data["request_key"],
            method="POST",
            path=request.path,
            fingerprint=fingerprint(json.dumps(content, sort_keys=True).encode()),
        )
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            if action == "capture":
                payment_capture(
                    payment_id=payment.id,
                    amount=data["amount"],
                    actor=actor,
                    request_key=request_key,
                )
                message = f"Captured {format_money(data['amount'], payment.currency_code)}"
            elif action == "refund":
                payment_refund(
                    payment_id=payment.id,
                    amount=data["amount"],
                    reason=data["reason"],
                    note=data["note"],
                    actor=actor,
                    request_key=request_key,
                )
                message = (
                    f"Refunded {format_money(data['amount'], payment.currency_code)} "
                    f"({data['reason']})"
                )
            else:
                payment_cancel(payment_id=payment.id, actor=actor, request_key=request_key)
                message = "Canceled the authorization"
            staff_action_log(user=request.user, obj=order, message=f"{message} of {payment.id}.")
            return 200, {"payment_id": payment.id}

        response = idempotent_response(idempotent, work, resource_id=payment.id)
        if response.status_code != 200:
            # A refusal stored for this key, now or by the page's first submission.
            body = json.loads(response.content)
            raise errors.DomainError(body["message"])
        return response.get("Idempotent-Replayed") != "true"

    @admin.action(description="Capture selected orders", permissions=["capture"])
    def capture_orders(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """Confirm first; then capture each order in full and show one result per order."""
        orders = list(queryset.order_by("created_at"))
        if request.POST.get("confirmed") != "yes":
            rows = [(o, format_money(o.total, o.currency_code)) for o in orders]
            context = {
                **self.admin_site.each_context(request),
                "title": "Capture selected orders",
                "opts": self.model._meta,
                "rows": rows,
                "queryset": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "request_key": uuid.uuid4().hex,
            }
            return TemplateResponse(request, "admin/checkout/order/capture_orders.html", context)
        actor = Actor.for_user(request.user)
        # Made when the confirmation page was shown: sending it twice captures once.
        request_key = request.POST.get("request_key", "")[:64]
        results = []
        for order in orders:
            try:
                captured = order_capture(
                    order_id=order.id,
                    actor=actor,
                    request_key=f"admin-bulk:{request_key}:{order.id}",
                )
                results.append((order, True, f"captured ({captured.payment_status})"))
                staff_action_log(
                    user=request.user, obj=order, message="Captured in full (bulk action)."
                )
            except errors.DomainError as error:
                results.append((order, False, error.message))
        context = {
            **self.admin_site.each_context(request),
            "title": "Capture results",
            "opts": self.model._meta,
            "results": results,
        }
        return TemplateResponse(request, "admin/checkout/order/capture_results.html", context)

    def has_capture_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.capture_payment")


@admin.register(Swap)
class SwapAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "difference", "status", "payment_status", "created_at"]
    list_filter = ["status", "payment_status"]
    search_fields = ["id", "order__id", "order__email"]
    list_select_related = ["order"]

    @admin.display(description="Difference due")
    def difference(self, swap: Swap) -> str:
        return format_money(swap.difference_due, swap.order.currency_code)


# Webhooks -----------------------------------------------------------------------------


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "provider",
        "type",
        "event_id",
        "status",
        "attempts",
        "processed_at",
    ]
    list_filter = ["status", "provider", "type"]
    search_fields = ["event_id", "type"]
    readonly_fields = ["provider", "event_id", "type", "status", "attempts", "last_error", "body"]
    actions = ["reprocess"]

    @admin.action(description="Process selected events again", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for event in queryset.order_by("received_at"):
            try:
                processed = webhook_process(record=event, render=render_completion)
                note = "processed" if processed else "already processed"
                self.message_user(request, f"Event {event.event_id}: {note}.", messages.SUCCESS)
            except Exception as error:  # one failing event must not hide the others' results
                self.message_user(
                    request, f"Event {event.event_id}: failed ({error}).", messages.ERROR
                )

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        """Processing can complete carts and record captures and refunds: it needs the
        change permission, though the events themselves stay read-only."""
        return request.user.has_perm("payments.change_webhookevent")
