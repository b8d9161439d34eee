from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from checkout.api.serializers import render_completion
from checkout.webhooks import webhook_process
from payments.models import WebhookEvent


class Command(BaseCommand):
    help = "Process webhook events that did not get processed (or the ones named by id)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", help="webhook event ids (default: every failed one)")

    def handle(self, *args: Any, **options: Any) -> None:
        events = WebhookEvent.objects.order_by("received_at")
        events = (
            events.filter(pk__in=options["ids"])
            if options["ids"]
            else events.filter(status=WebhookEvent.Status.FAILED)
        )
        for event in events:
            try:
                webhook_process(record=event, render=render_completion)
                self.stdout.write(f"{event.pk} {event.type}: processed")
            except Exception as error:  # one bad event must not stop the others
                self.stdout.write(f"{event.pk} {event.type}: failed again ({error})")
