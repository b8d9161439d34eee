"""Keep PaymentProvider rows in step with settings after every `migrate`."""

from typing import Any

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate)
def register_providers_after_migrate(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", "") != "payments":
        return
    from payments.providers_sync import providers_sync

    providers_sync()
