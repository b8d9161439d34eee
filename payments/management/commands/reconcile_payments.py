from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import errors
from payments.services.ledger import (
    operations_stuck,
    payment_rebuild_from_ledger,
    payments_reconcile,
)
from payments.services.recovery import operations_refresh_pending, operations_resume_due


class Command(BaseCommand):
    help = (
        "Compare every payment's stored amounts with what its PaymentEvent ledger says and "
        "report those that disagree (exit status 1 when there are any)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--resume-pending",
            action="store_true",
            help="First do what the worker does: ask again, under their own keys, for "
            "operations whose outcome is unknown (no live attempt holds them), and re-read "
            "those the provider settles later.",
        )
        parser.add_argument(
            "--older-than",
            type=int,
            default=3600,
            metavar="SECONDS",
            help="Report operations still open after this long (default 3600).",
        )
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Rewrite the disagreeing payments' amounts from their ledger.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume_pending"]:
            for operation in [*operations_resume_due(), *operations_refresh_pending()]:
                self.stdout.write(f"{operation.id} {operation.type}: {operation.status}")
        for operation in operations_stuck(older_than=timedelta(seconds=options["older_than"])):
            self.stdout.write(
                f"{operation.id} {operation.type} of {operation.payment_id or operation.session_id}"
                f" still {operation.status} since {operation.created_at:%Y-%m-%d %H:%M:%S}"
            )
        found = payments_reconcile()
        for discrepancy in found:
            details = ", ".join(
                f"{field} stored {stored} ledger {ledger}"
                for field, (stored, ledger) in discrepancy.differences.items()
            )
            self.stdout.write(f"{discrepancy.payment_id}: {details}")
        if options["fix"]:
            unfixed = []
            for discrepancy in found:
                try:
                    payment_rebuild_from_ledger(payment_id=discrepancy.payment_id)
                    self.stdout.write(f"{discrepancy.payment_id}: rebuilt from the ledger")
                except errors.DomainError as error:
                    unfixed.append(discrepancy)
                    self.stdout.write(f"{discrepancy.payment_id}: not rebuilt, {error.message}")
            found = unfixed
        self.stdout.write(f"{len(found)} payment(s) disagree with the ledger")
        if found:
            raise CommandError(f"{len(found)} payment(s) disagree with their event ledger.")
