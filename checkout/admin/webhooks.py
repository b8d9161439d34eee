"""Webhook events: failed ones wait here for an operator."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from checkout.api.serializers import render_completion
from checkout.webhooks import webhook_process
from payments.admin import ReadOnlyAdmin
from payments.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "provider",
        "type",
        "event_id",
        "status",
        "attempts",
        "processed_at",
    ]
    list_filter = ["status", "provider", "type"]
    search_fields = ["event_id", "type"]
    readonly_fields = ["provider", "event_id", "type", "status", "attempts", "last_error", "body"]
    actions = ["reprocess"]

    @admin.action(description="Process selected events again", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for event in queryset.order_by("received_at"):
            try:
                processed = webhook_process(record=event, render=render_completion)
                note = "processed" if processed else "already processed"
                self.message_user(request, f"Event {event.event_id}: {note}.", messages.SUCCESS)
            except Exception as error:  # one failing event must not hide the others' results
                self.message_user(
                    request, f"Event {event.event_id}: failed ({error}).", messages.ERROR
                )

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        """Processing can complete carts and record captures and refunds: it needs the
        change permission, though the events themselves stay read-only."""
        return request.user.has_perm("payments.change_webhookevent")
