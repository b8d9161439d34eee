"""Admin serializers of the checkout domain: regions, products, orders, swaps."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from checkout.api.serializers import OrderSerializer
from checkout.models import Order, Product, Region
from payments.api.admin_serializers import (
    AdminPaymentSerializer,
    AdminRefundSerializer,
    PaymentEventSerializer,
)
from payments.api.fields import AmountField, CurrencyCodeField, InputSerializer, StrictIntegerField


class AdminRegionSerializer(serializers.ModelSerializer):
    payment_providers = serializers.SerializerMethodField()

    class Meta:
        model = Region
        fields = ["id", "name", "currency_code", "countries", "payment_providers"]

    def get_payment_providers(self, region: Region) -> list[str]:
        """Every provider enabled in the region (one uninstalled since is listed too)."""
        return sorted(p.pk for p in region.payment_providers.all())


def countries_field(**kwargs: Any) -> serializers.ListField:
    """ISO 3166-1 alpha-2, lowercase; the first is the purchase country."""
    return serializers.ListField(
        child=serializers.RegexField(r"^[a-z]{2}$", max_length=2),
        max_length=250,
        help_text="ISO 3166-1 alpha-2 codes, lowercase; the first is the purchase country.",
        **kwargs,
    )


class RegionCreateInput(InputSerializer):
    name = serializers.CharField(max_length=100)
    currency_code = CurrencyCodeField()
    countries = countries_field(required=False, default=list)
    payment_providers = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list
    )


class RegionUpdateInput(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    currency_code = CurrencyCodeField(required=False)
    countries = countries_field(required=False)
    payment_providers = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False
    )


class RegionProviderInput(InputSerializer):
    provider_id = serializers.CharField(max_length=50)


class AdminPriceSerializer(serializers.Serializer):
    currency_code = serializers.CharField()
    amount = serializers.IntegerField()


class AdminProductSerializer(serializers.ModelSerializer):
    prices = AdminPriceSerializer(many=True, read_only=True)

    class Meta:
        model = Product
        fields = ["id", "title", "sku", "prices", "created_at"]


class PriceInput(InputSerializer):
    currency_code = CurrencyCodeField()
    amount = AmountField()


class ProductCreateInput(InputSerializer):
    title = serializers.CharField(max_length=200)
    sku = serializers.CharField(max_length=64)
    prices = PriceInput(many=True, required=False)


class AdminOrderSerializer(OrderSerializer):
    """The storefront's order, with the back office's view of its payments and refunds
    and the event ledger of its carts (the order's and its swaps')."""

    payments = AdminPaymentSerializer(many=True, read_only=True)  # type: ignore[assignment]
    refunds = AdminRefundSerializer(many=True, read_only=True)  # type: ignore[assignment]
    events = serializers.SerializerMethodField()

    class Meta(OrderSerializer.Meta):
        model = Order
        fields = [*OrderSerializer.Meta.fields, "events"]

    @extend_schema_field(PaymentEventSerializer(many=True))
    def get_events(self, order: Order) -> Any:
        return PaymentEventSerializer(order.ledger_events, many=True).data  # type: ignore[attr-defined]


class SwapReturnInput(InputSerializer):
    item_id = serializers.CharField(max_length=40)
    quantity = StrictIntegerField(min_value=1, max_value=1000)


class SwapAdditionalInput(InputSerializer):
    product_id = serializers.CharField(max_length=40)
    quantity = StrictIntegerField(min_value=1, max_value=1000)


class SwapCreateInput(InputSerializer):
    return_items = SwapReturnInput(many=True, required=False)
    additional_items = SwapAdditionalInput(many=True, required=False)
