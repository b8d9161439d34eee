"""The payment domain: providers, sessions, payments, refunds, the event ledger, idempotency keys.

Every invariant of SPEC section 2 that a row can break is a database constraint, so a bug
or a race in any caller is refused by PostgreSQL rather than written.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from payments.fields import CurrencyField, MoneyField, PrefixedIdField
from payments.purchase import Purchase
from providers.base import PaymentInput, RefundReason, SessionInput, SessionStatus


class PaymentProvider(models.Model):
    """A provider class configured in settings; kept in step by `register_providers`."""

    id = models.CharField(primary_key=True, max_length=50)
    is_installed = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id if self.is_installed else f"{self.id} (not installed)"


class PaymentSession(models.Model):
    class Status(models.TextChoices):
        PENDING = SessionStatus.PENDING.value
        AUTHORIZED = SessionStatus.AUTHORIZED.value
        REQUIRES_MORE = SessionStatus.REQUIRES_MORE.value
        ERROR = SessionStatus.ERROR.value
        CANCELED = SessionStatus.CANCELED.value

    id = PrefixedIdField("ps")
    cart = models.ForeignKey(
        "checkout.Cart", on_delete=models.CASCADE, related_name="payment_sessions"
    )
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="sessions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    is_selected = models.BooleanField(default=False)
    amount = MoneyField()
    currency_code = CurrencyField()
    data = models.JSONField(default=dict, blank=True)
    # What the customer must do before authorizing (a redirect, Stripe.js, Klarna's widget).
    next_action = models.JSONField(null=True, blank=True)
    payment_authorized_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every amount change: each amount is a new authorization at the provider.
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cart", "provider"], name="session_one_per_cart_provider"
            ),
            models.UniqueConstraint(
                fields=["cart"], condition=Q(is_selected=True), name="session_one_selected_per_cart"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="session_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in SessionStatus]),
                name="session_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} session {self.id}"

    def as_input(self, purchase: Purchase | None = None) -> SessionInput:
        """The session for its provider; `purchase` adds what the customer is buying."""
        data = dict(self.data)
        return SessionInput(
            session_id=self.id,
            cart_id=self.cart_id,
            amount=self.amount,
            currency_code=self.currency_code,
            data=data,
            return_url=str(data.get("return_url", "")),
            cancel_url=str(data.get("cancel_url", "")),
            **(purchase.session_fields() if purchase else {}),
        )


class Payment(models.Model):
    """An authorization turned into money that can be captured, refunded or canceled."""

    id = PrefixedIdField("pay")
    cart = models.ForeignKey("checkout.Cart", on_delete=models.PROTECT, related_name="payments")
    order = models.ForeignKey(
        "checkout.Order", on_delete=models.PROTECT, related_name="payments", null=True, blank=True
    )
    # A released session may be deleted; the payment keeps its provider data and events.
    session = models.ForeignKey(
        PaymentSession, on_delete=models.SET_NULL, related_name="payments", null=True, blank=True
    )
    # Set when the payment pays a swap's difference; its order is then the swap's order.
    swap = models.ForeignKey(
        "checkout.Swap", on_delete=models.PROTECT, related_name="payments", null=True, blank=True
    )
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="payments")
    currency_code = CurrencyField()
    amount = MoneyField(help_text="What the provider authorized.")
    amount_captured = MoneyField(default=0)
    amount_refunded = MoneyField(default=0)
    data = models.JSONField(default=dict, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # When the provider lets the authorization lapse (None: it holds until released).
    authorization_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [
            ("capture_payment", "Can capture payments"),
            ("refund_payment", "Can refund payments"),
            ("cancel_payment", "Can cancel payments"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0)
                & Q(amount_captured__gte=F("amount_refunded"))
                & Q(amount__gte=F("amount_captured")),
                name="payment_amounts_ordered",
            ),
            models.UniqueConstraint(
                fields=["cart"],
                condition=Q(canceled_at__isnull=True),
                name="payment_one_live_per_cart",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    # What may still move depends on the operations in flight; callers that decide read
    # these under the payment's lock. They iterate `operations` and `refunds`, so a list
    # prefetches both and pays no query per payment.

    def open_operations(self) -> list[PaymentOperation]:
        """Capture, refund and cancel operations whose outcome is not final yet."""
        return [op for op in self.operations.all() if op.is_money_movement and op.is_open]

    @property
    def capturable_amount(self) -> int:
        if self.canceled_at or self.captured_at:
            return 0
        if any(
            op.type in (OperationType.CAPTURE, OperationType.CANCEL)
            for op in self.open_operations()
        ):
            return 0
        return self.amount

    @property
    def refunds_pending(self) -> int:
        return sum(r.amount for r in self.refunds.all() if r.status == Refund.Status.PENDING)

    @property
    def refundable_amount(self) -> int:
        """Captured, less what was refunded and what refunds in flight may still take."""
        return self.amount_captured - self.amount_refunded - self.refunds_pending

    def can_capture(self) -> bool:
        return self.capturable_amount > 0

    def can_refund(self) -> bool:
        return self.refundable_amount > 0

    def can_cancel(self) -> bool:
        return (
            self.canceled_at is None
            and self.captured_at is None
            and not any(op.type == OperationType.CAPTURE for op in self.open_operations())
        )

    def as_input(self) -> PaymentInput:
        return PaymentInput(
            payment_id=self.id,
            session_id=self.session_id or self.data.get("session_id", ""),
            amount=self.amount,
            amount_captured=self.amount_captured,
            amount_refunded=self.amount_refunded,
            currency_code=self.currency_code,
            data=dict(self.data),
        )


class Refund(models.Model):
    """Money given back from a payment's capture.

    A refund is reserved as `pending` under the payment's lock, with the operation that asks
    the provider for it, so its amount counts against what racing refunds may take; it
    becomes `succeeded` together with the payment's `amount_refunded`, or `failed`.
    """

    class Reason(models.TextChoices):
        DISCOUNT = RefundReason.DISCOUNT.value
        RETURN = RefundReason.RETURN.value
        SWAP = RefundReason.SWAP.value
        CLAIM = RefundReason.CLAIM.value
        OTHER = RefundReason.OTHER.value

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = PrefixedIdField("ref")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    order = models.ForeignKey(
        "checkout.Order", on_delete=models.PROTECT, related_name="refunds", null=True, blank=True
    )
    amount = MoneyField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    # The request that asked for it (an admin Idempotency-Key, a swap): a retried request
    # finds its refunds instead of making new ones.
    request_key = models.CharField(max_length=100, blank=True, db_index=True)
    provider_reference = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(
                condition=Q(reason__in=[r.value for r in RefundReason]), name="refund_reason_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="refund_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.id


class OperationType(models.TextChoices):
    INITIATE = "initiate"
    UPDATE = "update"
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    REFUND = "refund"
    CANCEL = "cancel"
    RELEASE = "release"


MONEY_MOVEMENTS = (OperationType.CAPTURE, OperationType.REFUND, OperationType.CANCEL)


class PaymentOperation(models.Model):
    """A provider call that moves money or changes state there, written down before it is
    sent, in the transaction that decides it (SPEC 2).

    `requested` and `unknown` mean nobody knows yet whether it took effect: it is asked
    again, with the same provider idempotency key, until the provider says. `pending` means
    the provider took it and settles it later. Payment amounts move only with `succeeded`.
    `lease_until` (the database's clock) marks an attempt in flight: others leave it alone
    until the attempt ends or its process is presumed dead.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested"
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        UNKNOWN = "unknown"

    OPEN = (Status.REQUESTED, Status.UNKNOWN, Status.PENDING)
    UNRESOLVED = (Status.REQUESTED, Status.UNKNOWN)

    id = PrefixedIdField("op")
    type = models.CharField(max_length=20, choices=OperationType.choices)
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="operations", null=True, blank=True
    )
    # Plain text, like the ledger's: the record outlives a deleted session.
    session_id = models.CharField(max_length=40, blank=True, db_index=True)
    cart_id = models.CharField(max_length=40, blank=True, db_index=True)
    refund = models.OneToOneField(
        Refund, on_delete=models.PROTECT, related_name="operation", null=True, blank=True
    )
    amount = MoneyField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    provider_reference = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    # What the call needs to be sent again exactly (a capture's amount, a refund's reason,
    # the session revision an authorization is for).
    params = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "idempotency_key"], name="operation_key_unique_per_provider"
            ),
            # A payment is captured once and canceled once: one such operation at a time.
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(
                    status__in=["requested", "unknown", "pending"], type__in=["capture", "cancel"]
                ),
                name="operation_one_open_capture_or_cancel",
            ),
            models.CheckConstraint(
                condition=Q(payment__isnull=False) | ~Q(session_id=""),
                name="operation_has_subject",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="operation_amount_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["requested", "pending", "unknown"])
                | Q(settled_at__isnull=False),
                name="operation_final_is_settled",
            ),
            models.CheckConstraint(
                condition=(Q(type="refund") & Q(refund__isnull=False))
                | (~Q(type="refund") & Q(refund__isnull=True)),
                name="operation_refund_has_refund",
            ),
        ]
        indexes = [
            # The worker's sweeps read only what is still open.
            models.Index(
                fields=["status", "created_at"],
                condition=Q(status__in=["requested", "unknown", "pending"]),
                name="operation_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def is_money_movement(self) -> bool:
        return self.type in MONEY_MOVEMENTS


class PaymentEvent(models.Model):
    """Append-only ledger: one row per provider operation and per webhook, success or not.

    Session and cart ids are kept as plain text so the ledger outlives a deleted session.
    """

    class Type(models.TextChoices):
        INITIATE = "initiate"
        UPDATE = "update"
        DELETE = "delete"
        RELEASE = "release"
        AUTHORIZE = "authorize"
        CAPTURE = "capture"
        REFUND = "refund"
        CANCEL = "cancel"
        WEBHOOK = "webhook"

    id = PrefixedIdField("evt")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="events", null=True, blank=True
    )
    session_id = models.CharField(max_length=40, blank=True, db_index=True)
    cart_id = models.CharField(max_length=40, blank=True, db_index=True)
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=20, choices=Type.choices)
    amount = MoneyField(null=True, blank=True)
    success = models.BooleanField()
    provider_reference = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    operation = models.ForeignKey(
        "PaymentOperation", on_delete=models.PROTECT, related_name="events", null=True, blank=True
    )
    # The provider's own answer and its request id, for whoever has to ask the provider why.
    raw = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=255, blank=True)
    actor = models.CharField(
        max_length=150, help_text="storefront, webhook, system or a staff user"
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(payment__isnull=False) | ~Q(session_id=""), name="event_has_subject"
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="event_amount_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {'ok' if self.success else 'failed'}"


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key, bound to one request and the progress made on it.

    `lock_token` fences: a request whose lease was taken over holds a stale token and every
    later write of it is refused (see payments.idempotency).
    """

    class RecoveryPoint(models.TextChoices):
        STARTED = "started"
        PAYMENT_AUTHORIZED = "payment_authorized"
        FINISHED = "finished"

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=64, help_text="store, or admin:<user id>")
    key = models.CharField(max_length=255)
    request_method = models.CharField(max_length=10)
    request_path = models.CharField(max_length=512)
    request_fingerprint = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=40, blank=True, db_index=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    lock_token = models.UUIDField(null=True, blank=True)
    recovery_point = models.CharField(
        max_length=30, choices=RecoveryPoint.choices, default=RecoveryPoint.STARTED
    )
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key"], name="idempotency_key_unique_per_scope"
            ),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True)
                | (Q(response_code__isnull=False) & Q(recovery_point="finished")),
                name="idempotency_finished_has_response",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @staticmethod
    def new_lock_token() -> uuid.UUID:
        return uuid.uuid4()

    def stored_response(self) -> tuple[int, bytes] | None:
        if self.response_code is None or self.response_body is None:
            return None
        return self.response_code, bytes(self.response_body)


class WebhookEvent(models.Model):
    """A provider's webhook, stored raw before it is processed; processed once by event id.

    A failed event stays here, visible and re-processable by operators.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        FAILED = "failed"

    id = PrefixedIdField("wh")
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="webhooks")
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    body = models.TextField(help_text="The request body exactly as received.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When the worker tries a failed event again (exponential backoff); None: not again.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_once_per_event"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["received", "failed"]),
                name="webhook_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.type} {self.event_id}"
