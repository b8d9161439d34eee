"""Regions, the catalogue, carts and orders: what a storefront buys with."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from payments.fields import CurrencyField, MoneyField, PrefixedIdField
from payments.models import Payment, PaymentProvider, PaymentSession


class Region(models.Model):
    id = PrefixedIdField("reg")
    name = models.CharField(max_length=100)
    currency_code = CurrencyField()
    # ISO 3166-1 alpha-2, lowercase; the first is the purchase country where a provider
    # needs one (Klarna). A JSON list, so SQLite (make run) holds it as PostgreSQL does.
    countries = models.JSONField(default=list, blank=True)
    payment_providers = models.ManyToManyField(PaymentProvider, related_name="regions", blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency_code})"


class Product(models.Model):
    id = PrefixedIdField("prod")
    title = models.CharField(max_length=200)
    sku = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class ProductPrice(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    currency_code = CurrencyField()
    amount = MoneyField()

    class Meta:
        ordering = ["currency_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "currency_code"], name="price_one_per_currency"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="price_amount_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} {self.amount} {self.currency_code}"


class Cart(models.Model):
    class Type(models.TextChoices):
        DEFAULT = "default"
        SWAP = "swap"

    id = PrefixedIdField("cart")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="carts")
    currency_code = CurrencyField()
    email = models.EmailField(blank=True)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.DEFAULT)
    idempotency_key = models.CharField(max_length=255, blank=True)
    payment_authorized_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id

    @property
    def subtotal(self) -> int:
        return sum(item.total for item in self.items.all())

    @property
    def total(self) -> int:
        return self.subtotal

    @property
    def selected_session(self) -> PaymentSession | None:
        return next((s for s in self.payment_sessions.all() if s.is_selected), None)


class CartChange(models.Model):
    """A storefront change to a cart whose provider calls are still in flight.

    A completion does not start while one lives, and a change does not start while a
    completion holds the cart's key, so the two never interleave: one wins, the other gets
    its 409. `expires_at` (the database's clock) frees a cart whose changer died.
    """

    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="changes")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"change of {self.cart_id}"


class LineItem(models.Model):
    id = PrefixedIdField("item")
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200)
    unit_price = MoneyField()
    quantity = models.PositiveIntegerField()
    # On a swap cart: the part of the returned items' value credited against this line, so
    # the cart's total is what the customer owes for the exchange (Medusa's return lines).
    credit = MoneyField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "product"], name="line_item_one_per_product"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="line_item_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(credit__gte=0) & Q(credit__lte=F("unit_price") * F("quantity")),
                name="line_item_credit_within_total",
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=1000),
                name="line_item_quantity_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.title}"

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity - self.credit


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        CANCELED = "canceled"
        REQUIRES_ACTION = "requires_action"

    class PaymentStatus(models.TextChoices):
        NOT_PAID = "not_paid"
        AWAITING = "awaiting"
        PARTIALLY_CAPTURED = "partially_captured"
        CAPTURED = "captured"
        PARTIALLY_REFUNDED = "partially_refunded"
        REFUNDED = "refunded"
        CANCELED = "canceled"
        REQUIRES_ACTION = "requires_action"

    id = PrefixedIdField("order")
    cart = models.OneToOneField(Cart, on_delete=models.PROTECT, related_name="order")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="orders")
    email = models.EmailField(blank=True)
    currency_code = CurrencyField()
    total = MoneyField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    payment_status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.AWAITING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
        ]

    def __str__(self) -> str:
        return self.id


class Swap(models.Model):
    """An exchange on an order (Medusa's swap): items returned, items sent instead.

    `difference_due` is what the additional items cost at catalogue prices minus what the
    returned items were paid; when the customer owes it, they pay it by completing the
    swap's `swap` cart, whose payment then belongs to this swap and its order. Return and
    additional items are kept as they were when the swap was made.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested"
        COMPLETED = "completed"
        CANCELED = "canceled"
        REQUIRES_ACTION = "requires_action"

    class PaymentStatus(models.TextChoices):
        NOT_PAID = "not_paid"
        AWAITING = "awaiting"
        CAPTURED = "captured"
        DIFFERENCE_REFUNDED = "difference_refunded"
        CANCELED = "canceled"
        REQUIRES_ACTION = "requires_action"

    id = PrefixedIdField("swap")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="swaps")
    cart = models.OneToOneField(
        Cart, on_delete=models.PROTECT, related_name="swap", null=True, blank=True
    )
    # [{"item_id", "title", "unit_price", "quantity", "total"}], prices as paid on the order.
    return_items = models.JSONField(default=list, blank=True)
    # [{"product_id", "title", "unit_price", "quantity", "total"}], catalogue prices.
    additional_items = models.JSONField(default=list, blank=True)
    difference_due = models.BigIntegerField(help_text="Negative when the store owes money.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    payment_status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.NOT_PAID
    )
    confirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the customer paid the swap cart."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["requested", "completed", "canceled", "requires_action"]),
                name="swap_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    payment_status__in=[
                        "not_paid",
                        "awaiting",
                        "captured",
                        "difference_refunded",
                        "canceled",
                        "requires_action",
                    ]
                ),
                name="swap_payment_status_valid",
            ),
            # Only a customer who owes money gets a cart to pay it with.
            models.CheckConstraint(
                condition=Q(cart__isnull=True) | Q(difference_due__gt=0),
                name="swap_cart_only_when_owed",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def live_payment(self) -> Payment | None:
        """The swap's uncanceled payment, from prefetched rows when there are any."""
        return next((p for p in self.payments.all() if p.canceled_at is None), None)
