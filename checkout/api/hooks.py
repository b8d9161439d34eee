"""`POST /api/hooks/{provider_id}` (SPEC section 7)."""

from __future__ import annotations

import logging

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from checkout.tasks import webhook_process
from payments import bounded_json, errors
from payments.api.fields import error_responses
from payments.tasks import enqueue_on_commit
from payments.webhooks import webhook_store, webhook_verify

logger = logging.getLogger(__name__)


class RawBodyParser(BaseParser):
    """The signature covers the exact bytes: the view reads request.body, nothing parses it."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        return {}


WebhookAnswer = inline_serializer(
    name="WebhookAnswer",
    fields={
        "id": serializers.CharField(help_text="The stored event."),
        "received": serializers.BooleanField(
            help_text="Stored (once per event id) and queued for the worker."
        ),
    },
)


class WebhookView(APIView):
    authentication_classes: list[type] = []
    parser_classes = [RawBodyParser]
    # The provider delivers in bursts and signs every request: no per-address throttle.
    throttle_classes: list[type] = []

    @extend_schema(
        # The provider's own event, read as raw bytes for its signature.
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: WebhookAnswer, **error_responses(400, 404, 503)},
    )
    def post(self, request: Request, provider_id: str) -> Response:
        """Verify, store and queue in one go, and answer at once: processing (which
        re-reads the provider and may complete a cart) runs in the worker, never inside
        the provider's delivery. A duplicate delivery is stored once and processed once."""
        body = request.body
        try:
            # Every provider sends JSON; the provider's own parsing (and the processing that
            # reads the stored body again) then never meets one nested 100,000 deep.
            bounded_json.loads(body)
        except bounded_json.JSONRefused as error:
            raise errors.InvalidData(f"Webhook refused: {error.message}") from None
        event = webhook_verify(provider_id=provider_id, headers=dict(request.headers), body=body)
        with transaction.atomic():
            record = webhook_store(provider_id=provider_id, event=event, body=body)
            if record.status != record.Status.PROCESSED:
                enqueue_on_commit(webhook_process, record.pk)
        return Response({"id": record.pk, "received": True})
