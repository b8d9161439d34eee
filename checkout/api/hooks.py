"""`POST /api/hooks/{provider_id}` (SPEC section 7)."""

from __future__ import annotations

import logging

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from checkout.api.serializers import render_completion
from checkout.webhooks import webhook_process
from payments import bounded_json, errors
from payments.api.errors import error_body
from payments.api.fields import error_responses
from payments.webhooks import webhook_receive
from providers.base import ProviderError

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
        "processed": serializers.BooleanField(help_text="False for a repeated delivery."),
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
        responses={200: WebhookAnswer, **error_responses(400, 404, 409, 500, 502, 503)},
    )
    def post(self, request: Request, provider_id: str) -> Response:
        body = request.body
        try:
            # Every provider sends JSON; the provider's own parsing (and the processing that
            # reads the stored body again) then never meets one nested 100,000 deep.
            bounded_json.loads(body)
        except bounded_json.JSONRefused as error:
            raise errors.InvalidData(f"Webhook refused: {error.message}") from None
        try:
            record = webhook_receive(
                provider_id=provider_id, headers=dict(request.headers), body=body
            )
        except errors.ProviderNotAvailable:
            raise errors.NotFound("No such payment provider.") from None
        try:
            processed = webhook_process(record=record, render=render_completion)
        except errors.DomainError:
            raise  # 409 while another delivery runs, 503 while the provider is away: retried
        except ProviderError as error:
            # The re-read of the remote payment failed: the provider retries a 5xx, and the
            # event stays stored and marked failed meanwhile. Not a 500: nothing is broken.
            if error.outcome_unknown:
                raise errors.ProviderUnavailable(
                    "The provider could not be reached; the event will be processed later."
                ) from error
            raise errors.ProviderFailed(f"The provider refused: {error.message}") from error
        except Exception:
            # The provider retries a 5xx; the event stays stored and marked failed meanwhile.
            logger.exception("Webhook %s failed", record.pk)
            return Response(
                error_body(
                    "webhook_failed", "The event could not be processed; it will be retried."
                ),
                status=500,
            )
        return Response({"id": record.pk, "processed": processed})
