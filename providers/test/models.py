"""The `test` provider's "remote" ledger: what a real payment service would hold on its side."""

from django.db import models


class LedgerEntry(models.Model):
    class Operation(models.TextChoices):
        AUTHORIZE = "authorize"
        CAPTURE = "capture"
        REFUND = "refund"
        CANCEL = "cancel"

    reference = models.CharField(max_length=40, unique=True)
    operation = models.CharField(max_length=10, choices=Operation.choices)
    session_id = models.CharField(max_length=40, db_index=True)
    authorization = models.CharField(max_length=40, db_index=True)
    amount = models.BigIntegerField()
    # Unique: a repeated call with a key that took effect replays it, like a real provider.
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # With `async_operations`: when the movement takes effect (None: at once).
    settles_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.operation} {self.amount} ({self.session_id})"
