"""Capture, refund and cancel pages: one implementation, reached from an order's page and
from a payment's page.

What keeps an operator from moving money twice by accident:
- the page's hidden `request_key` is an Idempotency-Key bound to what the page submitted:
  sending the same page again replays its answer, another amount under it is refused;
- a page whose payment moved since it was shown (Back, then submit; a second tab; a
  colleague), or an amount equal to one moved in the last minutes, is shown again with what
  happened and must be confirmed before anything is sent;
- limits are checked on the form against what the payment can still give, counting
  operations in flight, and shown in the currency, never in minor units.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from unfold.widgets import (
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanWidget,
)

from payments import errors
from payments.api.idempotent import idempotent_response
from payments.audit import staff_action_log
from payments.idempotency import IdempotentRequest, fingerprint
from payments.models import (
    MONEY_MOVEMENTS,
    IdempotencyKey,
    Payment,
    PaymentOperation,
    Refund,
)
from payments.money import MAX_AMOUNT, currency_exponent, format_money, to_major
from payments.services import Actor, payment_cancel, payment_capture, payment_refund

# An amount moved this recently is probably the one the operator is about to move again.
REPEAT_WINDOW = timedelta(minutes=10)


class BoundedDecimalField(forms.DecimalField):
    """A decimal whose text is bounded before Decimal() sees it, and whose digits are bounded
    before anyone converts it: `1E+999990` is refused here, not after int() has spent half
    a minute on it (SPEC section 10)."""

    MAX_LENGTH = 32

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and len(value.strip()) > self.MAX_LENGTH:
            raise forms.ValidationError("Enter a shorter number.", code="max_length")
        return super().to_python(value)


class MoneyForm(forms.Form):
    # Made when the page is shown: submitting the same page twice is one operation, and the
    # key is bound to what the page submitted (see _run).
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    # How many money operations the payment had when the page was shown: more at submit
    # time means it moved meanwhile.
    # (Absent from a hand-made post: then only the same-amount check applies.)
    seen = forms.IntegerField(
        widget=forms.HiddenInput, min_value=0, max_value=10**6, required=False
    )
    confirm_repeat = forms.BooleanField(
        required=False,
        widget=UnfoldBooleanWidget,
        label="Yes, do it again",
        help_text="Tick to move money again although it moved a moment ago.",
    )


class AmountForm(MoneyForm):
    """An amount typed in the currency's major units (12.34), sent on in minor units."""

    # At most 10^12 minor units (13 digits for a currency without decimals) and at most 3
    # decimals (kwd has 3), checked by the field before clean_amount converts anything.
    amount = BoundedDecimalField(
        min_value=Decimal(0),
        max_digits=16,
        decimal_places=3,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    field_order = ["amount"]

    def __init__(
        self, *args: Any, currency_code: str, limit: int, verb_done: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.currency_code = currency_code
        self.limit = limit
        self.verb_done = verb_done
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
        if amount > self.limit:
            raise forms.ValidationError(
                f"At most {format_money(self.limit, self.currency_code)} can be {self.verb_done}."
            )
        return int(amount)


class RefundForm(AmountForm):
    reason = forms.ChoiceField(
        choices=Refund.Reason.choices,
        initial=Refund.Reason.RETURN,
        widget=UnfoldAdminSelectWidget,
    )
    note = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}), required=False, max_length=2000
    )
    field_order = ["amount", "reason", "note"]


class CancelForm(MoneyForm):
    pass


@dataclass(frozen=True)
class MoneyAction:
    permission: str
    form: type[MoneyForm]
    verb: str  # the button and the title
    done: str  # "At most €8.00 can be ..."


MONEY_ACTIONS = {
    "capture": MoneyAction("payments.capture_payment", AmountForm, "Capture", "captured"),
    "refund": MoneyAction("payments.refund_payment", RefundForm, "Refund", "refunded"),
    "cancel": MoneyAction("payments.cancel_payment", CancelForm, "Cancel authorization", ""),
}

OPERATION_VERBS = {"capture": "Captured", "refund": "Refunded", "cancel": "Canceled"}


def money_operations(payment: Payment) -> list[PaymentOperation]:
    return sorted(
        (op for op in payment.operations.all() if op.type in MONEY_MOVEMENTS),
        key=lambda op: (op.created_at, op.id),
    )


def operation_line(operation: PaymentOperation, currency_code: str) -> str:
    when = timezone.localtime(operation.created_at).strftime("%Y-%m-%d %H:%M %Z")
    amount = f" {format_money(operation.amount, currency_code)}" if operation.amount else ""
    verb = OPERATION_VERBS.get(operation.type, operation.type)
    return f"{verb}{amount} by {operation.actor} at {when} ({operation.status})"


def repeat_warning(
    payment: Payment, action: str, amount: int | None, seen: int | None
) -> str | None:
    """What the operator should know before moving money again, or None."""
    every = money_operations(payment)
    operations = [op for op in every if op.status != "failed"]
    if seen is not None and len(every) > seen:
        news = "; ".join(operation_line(op, payment.currency_code) for op in every[seen:])
        return f"This payment changed since the page was opened: {news}."
    if amount is None:
        return None
    since = timezone.now() - REPEAT_WINDOW
    same = [
        op
        for op in operations
        if op.type == action and op.amount == amount and op.created_at >= since
    ]
    if same:
        return (
            f"The same amount was {MONEY_ACTIONS[action].done} minutes ago: "
            f"{operation_line(same[-1], payment.currency_code)}."
        )
    return None


def log_object(payment: Payment) -> Model:
    """Where the History of a money action is kept: the order the payment pays for (its
    swap's order for a swap's payment), else the payment itself."""
    if payment.order_id is not None:
        return payment.order  # type: ignore[return-value]
    if payment.swap_id is not None:
        return payment.swap.order  # type: ignore[union-attr]
    return payment


def money_page(
    *,
    model_admin: Any,
    request: HttpRequest,
    payments: QuerySet[Payment],
    payment_id: str,
    action: str,
    back_url: str,
    breadcrumbs: list[tuple[str, str]],
) -> HttpResponse:
    """Capture, refund or cancel one payment of `payments` (what this operator may see,
    through the calling admin's get_queryset), after a confirmation page."""
    if action not in MONEY_ACTIONS:
        raise PermissionDenied
    spec = MONEY_ACTIONS[action]
    if not request.user.has_perm(spec.permission):
        raise PermissionDenied
    payment = get_object_or_404(
        payments.select_related("provider").prefetch_related("operations", "refunds"),
        pk=payment_id,
    )
    limit = payment.capturable_amount if action == "capture" else payment.refundable_amount
    kwargs: dict[str, Any] = (
        {}
        if action == "cancel"
        else {"currency_code": payment.currency_code, "limit": limit, "verb_done": spec.done}
    )
    warning = None
    if request.method == "POST":
        form = spec.form(request.POST, **kwargs)
        if form.is_valid():
            data = form.cleaned_data
            if not data["confirm_repeat"] and not _key_used(request, data["request_key"]):
                warning = repeat_warning(payment, action, data.get("amount"), data["seen"])
            if warning is None:
                try:
                    done = _run(request, action, payment, form)
                except errors.IdempotencyKeyMismatch:
                    model_admin.message_user(
                        request,
                        f"{spec.verb} refused: this page was already submitted with another "
                        "amount, reason or note. Nothing more was done; open the action again "
                        "to make another one.",
                        messages.ERROR,
                    )
                    return HttpResponseRedirect(back_url)
                except errors.DomainError as error:
                    form = _refused(request, spec, payment, error, kwargs)
                else:
                    model_admin.message_user(
                        request, _success(action, payment, data, done), messages.SUCCESS
                    )
                    return HttpResponseRedirect(back_url)
    else:
        initial: dict[str, Any] = {
            "request_key": uuid.uuid4().hex,
            "seen": len(money_operations(payment)),
        }
        if action != "cancel":
            initial["amount"] = to_major(limit, payment.currency_code)
        form = spec.form(initial=initial, **kwargs)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{spec.verb}: payment {payment.id}",
        "opts": model_admin.model._meta,
        "form": form,
        "payment": payment,
        "action": action,
        "verb": spec.verb,
        "back_url": back_url,
        "breadcrumbs": breadcrumbs,
        "warning": warning,
        "limit": format_money(limit, payment.currency_code) if action != "cancel" else "",
        "authorized": format_money(payment.amount, payment.currency_code),
        "captured": format_money(payment.amount_captured, payment.currency_code),
        "refunded": format_money(payment.amount_refunded, payment.currency_code),
        "releases": format_money(payment.amount - payment.amount_captured, payment.currency_code),
        "exponent": currency_exponent(payment.currency_code),
        "recent": [
            operation_line(op, payment.currency_code) for op in money_operations(payment)[-5:]
        ][::-1],
    }
    return TemplateResponse(request, "admin/backoffice/money_action.html", context)


def _key_used(request: HttpRequest, key: str) -> bool:
    """A key this page already sent: its answer is replayed (or refused as a mismatch) by
    the idempotency machinery, never a new operation, so no warning is due."""
    return IdempotencyKey.objects.filter(scope=_scope(request), key=key).exists()


def _scope(request: HttpRequest) -> str:
    return f"admin-form:{request.user.pk}"


def _refused(
    request: HttpRequest,
    spec: MoneyAction,
    payment: Payment,
    error: errors.DomainError,
    kwargs: dict[str, Any],
) -> MoneyForm:
    """The form again with the operator's input and why it was refused, against the payment
    as it is now. A final refusal is stored for the page's key, so the form gets a new one
    for the corrected attempt; a lost answer keeps its key, so sending it again asks the
    provider about the same operation."""
    fresh = Payment.objects.prefetch_related("operations", "refunds").get(pk=payment.pk)
    data = request.POST.copy()
    if error.retry_after is None:
        data["request_key"] = uuid.uuid4().hex
    data["seen"] = str(len(money_operations(fresh)))
    if "limit" in kwargs:
        is_capture = spec.permission.endswith("capture_payment")
        limit = fresh.capturable_amount if is_capture else fresh.refundable_amount
        kwargs = {**kwargs, "limit": limit}
    form = spec.form(data, **kwargs)
    form.is_valid()
    if isinstance(error, errors.AmountExceedsCapturable | errors.AmountExceedsRefundable):
        message = (
            f"At most {format_money(kwargs['limit'], payment.currency_code)} can be {spec.done}."
        )
    elif isinstance(error, errors.ProviderUnavailable):
        message = (
            "The provider's answer was lost, so nobody knows yet whether it happened. Send "
            "this page again: it asks about the same operation and never makes a second one."
        )
    else:
        message = error.message
    form.add_error(None, f"{spec.verb} failed: {message}")
    return form


def _success(action: str, payment: Payment, data: dict[str, Any], done: bool) -> str:
    verb = MONEY_ACTIONS[action].verb
    if not done:
        return f"{verb}: already done by this page earlier; nothing more was moved."
    fresh = Payment.objects.get(pk=payment.pk)
    money = payment.currency_code
    if action == "capture":
        released = fresh.amount - fresh.amount_captured
        note = (
            f"; released {format_money(released, money)} of the authorization" if released else ""
        )
        return f"Captured {format_money(data['amount'], money)} of {payment.id}{note}."
    if action == "refund":
        return (
            f"Refunded {format_money(data['amount'], money)} ({data['reason']}) of {payment.id}; "
            f"{format_money(fresh.refundable_amount, money)} can still be refunded."
        )
    return (
        f"Canceled the authorization of {payment.id}: released "
        f"{format_money(payment.amount, money)}."
    )


def _run(request: HttpRequest, action: str, payment: Payment, form: forms.Form) -> bool:
    """Run the action once per confirmation page; False when the page had run already.

    The page's hidden request_key is an Idempotency-Key bound, like the admin API's, to
    what the page submitted: the same key with another amount, reason or note raises
    IdempotencyKeyMismatch instead of being merged into the first operation. A final
    answer (success or a refusal) is stored for the key; an unknown outcome (503) is not,
    so submitting the page again asks the provider again under the same key.
    """
    data = form.cleaned_data
    content = {
        name: value
        for name, value in data.items()
        if name not in ("request_key", "seen", "confirm_repeat")
    }
    idempotent = IdempotentRequest(
        scope=_scope(request),
        key=data["request_key"],
        method="POST",
        path=request.path,
        fingerprint=fingerprint(json.dumps(content, sort_keys=True).encode()),
    )
    actor = Actor.for_user(request.user)

    def work(request_key: str) -> tuple[int, Any]:
        if action == "capture":
            payment_capture(
                payment_id=payment.id, amount=data["amount"], actor=actor, request_key=request_key
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
                f"Refunded {format_money(data['amount'], payment.currency_code)} ({data['reason']})"
            )
        else:
            payment_cancel(payment_id=payment.id, actor=actor, request_key=request_key)
            message = "Canceled the authorization"
        staff_action_log(
            user=request.user, obj=log_object(payment), message=f"{message} of {payment.id}."
        )
        return 200, {"payment_id": payment.id}

    response = idempotent_response(idempotent, work, resource_id=payment.id)
    if response.status_code != 200:
        # A refusal stored for this key, now or by the page's first submission.
        body = json.loads(response.content)
        error_class = {
            "amount_exceeds_capturable": errors.AmountExceedsCapturable,
            "amount_exceeds_refundable": errors.AmountExceedsRefundable,
        }.get(body.get("code"), errors.DomainError)
        raise error_class(body["message"])
    return response.get("Idempotent-Replayed") != "true"
