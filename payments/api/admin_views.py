"""Admin API of the payment domain: providers, payments and their money operations, and the
test provider's remote ledger. Thin views over payments.services."""

from __future__ import annotations

from django.db.models import Prefetch, Q
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from payments import errors
from payments.api.admin_base import ADMIN_ERRORS, POST_ERRORS, AdminViewSet
from payments.api.admin_serializers import (
    CaptureInput,
    LedgerEntrySerializer,
    PaymentDetailSerializer,
    PaymentProviderSerializer,
    RefundInput,
)
from payments.api.fields import error_responses, validated
from payments.api.schema import IDEMPOTENT
from payments.audit import staff_action_log
from payments.models import Payment, PaymentEvent, PaymentOperation, PaymentProvider, Refund
from payments.services import Actor, payment_cancel, payment_capture, payment_refund
from providers.registry import ProviderNotConfigured, get_provider
from providers.test.provider import ledger_entries

MONEY_ERRORS = error_responses(*POST_ERRORS, 502, 503)


def payment_detail(payment_id: str) -> Payment:
    """A payment with its refunds, operations and events, in four queries."""
    payment = (
        Payment.objects.prefetch_related(
            Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "id")),
            Prefetch("operations", queryset=PaymentOperation.objects.order_by("created_at", "id")),
        )
        .filter(pk=payment_id)
        .first()
    )
    if payment is None:
        raise errors.NotFound("No payment with this id.")
    session_id = payment.session_id or payment.data.get("session_id", "")
    # Its own events, and its session's before it existed (initiate, authorize).
    payment.ledger_events = list(  # type: ignore[attr-defined]
        PaymentEvent.objects.filter(
            Q(payment=payment) | Q(payment__isnull=True, session_id=session_id)
        ).order_by("created_at", "id")
    )
    return payment


def payment_response(payment_id: str) -> tuple[int, object]:
    return 200, PaymentDetailSerializer(payment_detail(payment_id)).data


class PaymentProviderViewSet(AdminViewSet):
    serializer_class = PaymentProviderSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return PaymentProvider.objects.prefetch_related("regions").order_by("id")

    @extend_schema(
        responses={200: PaymentProviderSerializer(many=True), **error_responses(*ADMIN_ERRORS)}
    )
    def list(self, request: Request) -> Response:
        return Response(PaymentProviderSerializer(self.get_queryset(), many=True).data)


class PaymentViewSet(AdminViewSet):
    """Capture, refund and cancel each need their own model permission."""

    serializer_class = PaymentDetailSerializer
    action_permissions = {
        "capture": ("payments.capture_payment",),
        "refund": ("payments.refund_payment",),
        "cancel": ("payments.cancel_payment",),
    }

    @extend_schema(responses={200: PaymentDetailSerializer, **error_responses(*ADMIN_ERRORS, 404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(PaymentDetailSerializer(payment_detail(pk)).data)

    @extend_schema(
        request=CaptureInput,
        parameters=IDEMPOTENT,
        responses={200: PaymentDetailSerializer, **MONEY_ERRORS},
        description="Capture all that is capturable, or `amount`; a partial capture "
        "releases the rest, as Stripe does. Needs payments.capture_payment.",
    )
    def capture(self, request: Request, pk: str) -> HttpResponse:
        amount = validated(CaptureInput, request).get("amount")
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, object]:
            payment = payment_capture(
                payment_id=pk, amount=amount, actor=actor, request_key=request_key
            )
            message = f"Captured {amount if amount is not None else 'all'} (admin API)."
            staff_action_log(user=request.user, obj=payment, message=message)
            return payment_response(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=RefundInput,
        parameters=IDEMPOTENT,
        responses={200: PaymentDetailSerializer, **MONEY_ERRORS},
        description="Refund part of what was captured (any number of times). Two refunds "
        "racing never exceed the capture: the loser gets 422 amount_exceeds_refundable. "
        "Needs payments.refund_payment.",
    )
    def refund(self, request: Request, pk: str) -> HttpResponse:
        data = validated(RefundInput, request)
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, object]:
            payment = payment_refund(payment_id=pk, actor=actor, request_key=request_key, **data)
            message = f"Refunded {data['amount']} ({data['reason']}) (admin API)."
            staff_action_log(user=request.user, obj=payment, message=message)
            return payment_response(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: PaymentDetailSerializer, **MONEY_ERRORS},
        description="Release an authorization that was not captured. "
        "Needs payments.cancel_payment.",
    )
    def cancel(self, request: Request, pk: str) -> HttpResponse:
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, object]:
            payment = payment_cancel(payment_id=pk, actor=actor, request_key=request_key)
            staff_action_log(user=request.user, obj=payment, message="Canceled (admin API).")
            return payment_response(pk)

        return self.idempotent(request, work, resource_id=pk)


class TestLedgerViewSet(AdminViewSet):
    """The `test` provider's remote ledger: what reached its "remote" side, oldest first."""

    serializer_class = LedgerEntrySerializer

    @extend_schema(
        parameters=[OpenApiParameter("session_id", str, required=False)],
        responses={200: LedgerEntrySerializer(many=True), **error_responses(*ADMIN_ERRORS, 404)},
    )
    def list(self, request: Request) -> Response:
        try:
            get_provider("test")
        except ProviderNotConfigured:
            raise errors.NotFound("The test provider is not enabled here.") from None
        entries = ledger_entries(session_id=request.query_params.get("session_id") or None)
        return Response(LedgerEntrySerializer(entries, many=True).data)
