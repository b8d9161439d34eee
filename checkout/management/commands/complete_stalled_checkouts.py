from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from checkout.api.serializers import render_completion
from checkout.completion import checkout_complete_stalled


class Command(BaseCommand):
    help = (
        "Finish checkouts whose payment was authorized (or whose authorization answer was "
        "lost) but which never reached an order; cancel the authorization of a cart that can "
        "no longer be completed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=60, help="seconds since the authorization was asked"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcomes = checkout_complete_stalled(
            older_than=timedelta(seconds=options["older_than"]), render=render_completion
        )
        for outcome in outcomes:
            self.stdout.write(f"{outcome.cart_id} (key {outcome.key}): {outcome.result}")
        self.stdout.write(f"{len(outcomes)} stalled checkout(s) handled")
