"""Admin serializers of the payment domain: one output per resource, one input per action."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.api.fields import AmountField, InputSerializer
from payments.models import Payment, PaymentEvent, PaymentOperation, PaymentProvider, Refund
from providers.test.models import LedgerEntry


class PaymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentEvent
        fields = [
            "id",
            "payment_id",
            "session_id",
            "cart_id",
            "provider_id",
            "type",
            "amount",
            "success",
            "provider_reference",
            "idempotency_key",
            "error",
            "actor",
            "created_at",
        ]


class PaymentOperationSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentOperation
        fields = [
            "id",
            "type",
            "payment_id",
            "session_id",
            "amount",
            "idempotency_key",
            "status",
            "attempts",
            "provider_reference",
            "error",
            "actor",
            "created_at",
            "settled_at",
        ]


class RefundSerializer(serializers.ModelSerializer):
    """A refund as the storefront sees it: never the operator's internal note (SPEC 2, 4)."""

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment_id",
            "order_id",
            "amount",
            "reason",
            "status",
            "created_at",
        ]


class AdminRefundSerializer(RefundSerializer):
    """The operator also sees the internal note and the provider's reference."""

    class Meta(RefundSerializer.Meta):
        fields = [*RefundSerializer.Meta.fields, "note", "provider_reference"]


class AdminPaymentSerializer(serializers.ModelSerializer):
    capturable_amount = serializers.IntegerField(read_only=True)
    refundable_amount = serializers.IntegerField(read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "cart_id",
            "order_id",
            "swap_id",
            "provider_id",
            "currency_code",
            "amount",
            "amount_captured",
            "amount_refunded",
            "capturable_amount",
            "refundable_amount",
            "data",
            "captured_at",
            "canceled_at",
            "authorization_expires_at",
            "created_at",
        ]


class PaymentDetailSerializer(AdminPaymentSerializer):
    """A payment with its refunds and its events (its session's authorization included)."""

    refunds = AdminRefundSerializer(many=True, read_only=True)
    operations = PaymentOperationSerializer(many=True, read_only=True)
    events = serializers.SerializerMethodField()

    class Meta(AdminPaymentSerializer.Meta):
        fields = [*AdminPaymentSerializer.Meta.fields, "refunds", "operations", "events"]

    @extend_schema_field(PaymentEventSerializer(many=True))
    def get_events(self, payment: Payment) -> Any:
        return PaymentEventSerializer(payment.ledger_events, many=True).data  # type: ignore[attr-defined]


class CaptureInput(InputSerializer):
    amount = AmountField(
        min_value=1, required=False, help_text="Minor units; all that is capturable if left out."
    )


class RefundInput(InputSerializer):
    amount = AmountField(min_value=1)
    reason = serializers.ChoiceField(choices=Refund.Reason.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class PaymentProviderSerializer(serializers.ModelSerializer):
    regions = serializers.SerializerMethodField()

    class Meta:
        model = PaymentProvider
        fields = ["id", "is_installed", "regions"]

    def get_regions(self, provider: PaymentProvider) -> list[str]:
        """Ids of the regions that enable it."""
        return sorted(region.pk for region in provider.regions.all())  # type: ignore[attr-defined]


class LedgerEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = LedgerEntry
        fields = ["operation", "session_id", "amount", "idempotency_key", "created_at"]
