from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import errors
from payments.services import (
    payment_rebuild_from_ledger,
    payments_reconcile,
    payments_resume_pending,
)


class Command(BaseCommand):
    help = (
        "Compare every payment's stored amounts with what its PaymentEvent ledger says and "
        "report those that disagree (exit status 1 when there are any)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--resume-pending",
            action="store_true",
            help="First settle captures, refunds and cancels whose answer was lost, by "
            "asking the provider again with the same idempotency key.",
        )
        parser.add_argument(
            "--older-than",
            type=int,
            default=60,
            metavar="SECONDS",
            help="Only resume operations pending for longer than this (default 60). A "
            "capture or cancel is taken over only once it has been pending longer than "
            "IDEMPOTENCY_LOCK_LEASE_SECONDS, so a live request is never raced.",
        )
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Rewrite the disagreeing payments' amounts from their ledger.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume_pending"]:
            for outcome in payments_resume_pending(
                older_than=timedelta(seconds=options["older_than"])
            ):
                self.stdout.write(f"{outcome.subject} {outcome.operation}: {outcome.result}")
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
