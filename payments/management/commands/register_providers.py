from typing import Any

from django.core.management.base import BaseCommand

from payments.providers_sync import providers_sync


class Command(BaseCommand):
    help = "Sync PaymentProvider rows with PAYMENT_PROVIDERS and print what changed."

    def handle(self, *args: Any, **options: Any) -> None:
        report = providers_sync()
        for label, ids in (
            ("added", report.added),
            ("reinstalled", report.reinstalled),
            ("uninstalled", report.uninstalled),
        ):
            for identifier in ids:
                self.stdout.write(f"{label}: {identifier}")
        if not (report.added or report.reinstalled or report.uninstalled):
            self.stdout.write(f"no changes ({', '.join(report.unchanged) or 'no providers'})")
