from typing import Any

from django.core.management.base import BaseCommand

from payments.idempotency import expire_idempotency_keys


class Command(BaseCommand):
    help = "Delete Idempotency-Keys that finished more than IDEMPOTENCY_KEY_TTL_HOURS ago."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{expire_idempotency_keys()} expired key(s) deleted")
