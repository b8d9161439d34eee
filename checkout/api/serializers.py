"""Storefront input and output serializers: one per action, outputs read prefetched rows."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from checkout.api.documents import order_document
from checkout.models import Cart, LineItem, Order, Region, Swap
from checkout.selectors import order_queryset
from payments.api.admin_serializers import RefundSerializer
from payments.api.fields import InputSerializer, StrictIntegerField
from payments.models import Payment, PaymentSession


class RegionSerializer(serializers.ModelSerializer):
    payment_providers = serializers.SerializerMethodField()

    class Meta:
        model = Region
        fields = ["id", "name", "currency_code", "countries", "payment_providers"]

    def get_payment_providers(self, region: Region) -> list[str]:
        return sorted(p.id for p in region.payment_providers.all() if p.is_installed)


class ProductPriceSerializer(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    sku = serializers.CharField()
    price = serializers.IntegerField()
    currency_code = serializers.CharField()


class LineItemSerializer(serializers.ModelSerializer):
    total = serializers.IntegerField(read_only=True)

    class Meta:
        model = LineItem
        fields = ["id", "product_id", "title", "unit_price", "quantity", "total"]


class RedirectAction(serializers.Serializer):
    type = serializers.ChoiceField(choices=["redirect"])
    url = serializers.CharField(help_text="The provider's page (approval, 3-D Secure).")


class StripeSdkAction(serializers.Serializer):
    type = serializers.ChoiceField(choices=["use_stripe_sdk"])
    client_secret = serializers.CharField(help_text="For Stripe.js to confirm the intent.")


class KlarnaWidgetAction(serializers.Serializer):
    type = serializers.ChoiceField(choices=["klarna_widget"])
    client_token = serializers.CharField(help_text="For Klarna's widget in the browser.")


# What the customer must do before the session can be authorized; `type` says which.
NextActionSerializer = PolymorphicProxySerializer(
    component_name="NextAction",
    serializers={
        "redirect": RedirectAction,
        "use_stripe_sdk": StripeSdkAction,
        "klarna_widget": KlarnaWidgetAction,
    },
    resource_type_field_name="type",
    many=False,
    allow_null=True,
)


class PaymentSessionSerializer(serializers.ModelSerializer):
    next_action = serializers.SerializerMethodField()

    class Meta:
        model = PaymentSession
        fields = [
            "id",
            "cart_id",
            "provider_id",
            "status",
            "is_selected",
            "amount",
            "currency_code",
            "data",
            "next_action",
            "payment_authorized_at",
        ]

    @extend_schema_field(NextActionSerializer)
    def get_next_action(self, session: PaymentSession) -> dict[str, str] | None:
        return session.next_action


class CartSerializer(serializers.ModelSerializer):
    items = LineItemSerializer(many=True, read_only=True)
    subtotal = serializers.IntegerField(read_only=True)
    total = serializers.IntegerField(read_only=True)
    payment_sessions = PaymentSessionSerializer(many=True, read_only=True)
    payment_session = PaymentSessionSerializer(
        source="selected_session", read_only=True, allow_null=True
    )
    order_id = serializers.SerializerMethodField()

    class Meta:
        model = Cart
        fields = [
            "id",
            "region_id",
            "currency_code",
            "email",
            "type",
            "items",
            "subtotal",
            "total",
            "payment_sessions",
            "payment_session",
            "idempotency_key",
            "payment_authorized_at",
            "completed_at",
            "order_id",
        ]

    def get_order_id(self, cart: Cart) -> str | None:
        order = getattr(cart, "order", None) if cart.completed_at else None
        return order.id if order else None


class PaymentSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = [
            "id",
            "provider_id",
            "currency_code",
            "amount",
            "amount_captured",
            "amount_refunded",
            "captured_at",
            "canceled_at",
            "created_at",
        ]


class SwapReturnItemSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    title = serializers.CharField()
    unit_price = serializers.IntegerField()
    quantity = serializers.IntegerField()
    total = serializers.IntegerField()


class SwapAdditionalItemSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    title = serializers.CharField()
    unit_price = serializers.IntegerField()
    quantity = serializers.IntegerField()
    total = serializers.IntegerField()


class SwapSerializer(serializers.ModelSerializer):
    return_items = SwapReturnItemSerializer(many=True, read_only=True)
    additional_items = SwapAdditionalItemSerializer(many=True, read_only=True)
    payment_id = serializers.SerializerMethodField()

    class Meta:
        model = Swap
        fields = [
            "id",
            "order_id",
            "return_items",
            "additional_items",
            "difference_due",
            "cart_id",
            "payment_id",
            "payment_status",
            "status",
            "confirmed_at",
            "completed_at",
            "canceled_at",
            "created_at",
        ]

    def get_payment_id(self, swap: Swap) -> str | None:
        payment = swap.live_payment
        return payment.pk if payment else None


class OrderSerializer(serializers.ModelSerializer):
    items = LineItemSerializer(source="cart.items", many=True, read_only=True)
    payments = PaymentSummarySerializer(many=True, read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)
    swaps = SwapSerializer(many=True, read_only=True)
    paid_total = serializers.SerializerMethodField()
    refunded_total = serializers.SerializerMethodField()
    refundable_amount = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "cart_id",
            "region_id",
            "email",
            "currency_code",
            "items",
            "total",
            "status",
            "payment_status",
            "payments",
            "refunds",
            "swaps",
            "paid_total",
            "refunded_total",
            "refundable_amount",
            "created_at",
        ]

    def get_paid_total(self, order: Order) -> int:
        return sum(p.amount_captured for p in order.payments.all())

    def get_refunded_total(self, order: Order) -> int:
        return sum(p.amount_refunded for p in order.payments.all())

    def get_refundable_amount(self, order: Order) -> int:
        return sum(p.refundable_amount for p in order.payments.all())


class CartCreateInput(InputSerializer):
    region_id = serializers.CharField(max_length=40)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)


class CartUpdateInput(InputSerializer):
    region_id = serializers.CharField(max_length=40, required=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)


class LineItemCreateInput(InputSerializer):
    product_id = serializers.CharField(max_length=40)
    quantity = StrictIntegerField(min_value=1, max_value=1000)


class LineItemUpdateInput(InputSerializer):
    quantity = StrictIntegerField(min_value=0, max_value=1000)


class SessionSelectInput(InputSerializer):
    provider_id = serializers.CharField(max_length=50)


class SessionDataInput(InputSerializer):
    """`{"data": {...}}`, declared in get_fields: a `data` attribute hides Serializer.data."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "data": serializers.DictField(
                help_text="The provider's own keys (the `test` provider's are in SPEC 3.2): "
                "a key it does not know, or a value it does not take, is 400 invalid_data."
            )
        }


def _completion(kind: str, data: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(
        name=f"{kind.title()}Completion",
        fields={"type": serializers.ChoiceField(choices=[kind]), "data": data},
    )


# `{"type": "order" | "swap" | "cart", "data": ...}` (SPEC 5.3): `type` says what `data` is,
# so a generated client gets one typed class per answer.
CompletionSerializer = PolymorphicProxySerializer(
    component_name="Completion",
    serializers={
        "order": _completion("order", OrderSerializer()),
        "swap": _completion("swap", SwapSerializer()),
        "cart": _completion("cart", CartSerializer()),
    },
    resource_type_field_name="type",
    many=False,
)


def render_completion(cart: Cart, order: Order | None = None) -> bytes:
    """The final answer of a completion, as stored with its key and replayed byte for byte:
    the order (read, unless the completion gives the one it just made), or for a swap's
    cart the swap it paid."""
    if cart.type == Cart.Type.SWAP:
        swap = Swap.objects.prefetch_related("payments").get(cart=cart)
        return JSONRenderer().render({"type": "swap", "data": SwapSerializer(swap).data})
    if order is None:
        order = order_queryset().get(cart=cart)
    return JSONRenderer().render({"type": "order", "data": order_document(order)})
