"""The storefront API (SPEC section 4): thin views over checkout services."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from checkout import services
from checkout.api.documents import cart_document, order_document
from checkout.api.serializers import (
    CartCreateInput,
    CartSerializer,
    CartUpdateInput,
    CompletionSerializer,
    LineItemCreateInput,
    LineItemUpdateInput,
    OrderSerializer,
    ProductPriceSerializer,
    RegionSerializer,
    SessionDataInput,
    SessionSelectInput,
    render_completion,
)
from checkout.completion import Finished, cart_complete
from checkout.selectors import order_get, region_list
from payments.api.fields import error_responses, validated
from payments.api.schema import IDEMPOTENT
from payments.errors import InvalidData
from payments.idempotency import IdempotentRequest, fingerprint, new_key, parse_key

STORE_SCOPE = "store"


def cart_response(cart: Any, status: int = 200) -> Response:
    return Response(cart_document(cart), status=status)


CART_ERRORS = error_responses(400, 404, 409)


class RegionViewSet(viewsets.GenericViewSet):
    serializer_class = RegionSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return region_list()

    @extend_schema(responses={200: RegionSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response(RegionSerializer(self.get_queryset(), many=True).data)


class ProductViewSet(viewsets.GenericViewSet):
    serializer_class = ProductPriceSerializer

    @extend_schema(
        parameters=[OpenApiParameter("region_id", str, required=True)],
        responses={200: ProductPriceSerializer(many=True), **error_responses(400)},
    )
    def list(self, request: Request) -> Response:
        region_id = request.query_params.get("region_id")
        if not region_id:
            raise InvalidData(
                "region_id is required.", fields={"region_id": ["This field is required."]}
            )
        region = services.region_get(region_id)
        rows = [
            {
                "id": p.id,
                "title": p.title,
                "sku": p.sku,
                "price": price,
                "currency_code": region.currency_code,
            }
            for p, price in services.products_for_region(region_id)
        ]
        return Response(ProductPriceSerializer(rows, many=True).data)


class CartViewSet(viewsets.GenericViewSet):
    serializer_class = CartSerializer

    @extend_schema(request=CartCreateInput, responses={201: CartSerializer, **error_responses(400)})
    def create(self, request: Request) -> Response:
        return cart_response(services.cart_create(**validated(CartCreateInput, request)), 201)

    @extend_schema(responses={200: CartSerializer, **error_responses(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        return cart_response(services.cart_get(pk))

    @extend_schema(request=CartUpdateInput, responses={200: CartSerializer, **CART_ERRORS})
    def update(self, request: Request, pk: str) -> Response:
        return cart_response(
            services.cart_update(cart_id=pk, **validated(CartUpdateInput, request))
        )

    @extend_schema(request=LineItemCreateInput, responses={200: CartSerializer, **CART_ERRORS})
    def add_line_item(self, request: Request, pk: str) -> Response:
        data = validated(LineItemCreateInput, request)
        return cart_response(services.line_item_add(cart_id=pk, **data))

    @extend_schema(request=LineItemUpdateInput, responses={200: CartSerializer, **CART_ERRORS})
    def update_line_item(self, request: Request, pk: str, item_id: str) -> Response:
        data = validated(LineItemUpdateInput, request)
        return cart_response(services.line_item_update(cart_id=pk, item_id=item_id, **data))

    @extend_schema(request=None, responses={200: CartSerializer, **CART_ERRORS})
    def delete_line_item(self, request: Request, pk: str, item_id: str) -> Response:
        return cart_response(services.line_item_delete(cart_id=pk, item_id=item_id))

    @extend_schema(request=None, responses={200: CartSerializer, **error_responses(404, 409, 503)})
    def create_payment_sessions(self, request: Request, pk: str) -> Response:
        return cart_response(services.cart_payment_sessions_create(cart_id=pk))

    @extend_schema(
        request=SessionSelectInput,
        responses={200: CartSerializer, **error_responses(400, 404, 409, 422)},
    )
    def select_payment_session(self, request: Request, pk: str) -> Response:
        data = validated(SessionSelectInput, request)
        return cart_response(services.cart_payment_session_select(cart_id=pk, **data))

    @extend_schema(request=SessionDataInput, responses={200: CartSerializer, **CART_ERRORS})
    def update_payment_session(self, request: Request, pk: str, provider_id: str) -> Response:
        data = validated(SessionDataInput, request)["data"]
        return cart_response(
            services.cart_payment_session_update_data(
                cart_id=pk, provider_id=provider_id, data=data
            )
        )

    @extend_schema(request=None, responses={200: CartSerializer, **CART_ERRORS})
    def refresh_payment_session(self, request: Request, pk: str, provider_id: str) -> Response:
        return cart_response(
            services.cart_payment_session_refresh(cart_id=pk, provider_id=provider_id)
        )

    @extend_schema(request=None, responses={200: CartSerializer, **CART_ERRORS})
    def delete_payment_session(self, request: Request, pk: str, provider_id: str) -> Response:
        return cart_response(
            services.cart_payment_session_delete(cart_id=pk, provider_id=provider_id)
        )


class CartCompleteView(viewsets.GenericViewSet):
    """POST carts/{id}/complete: every answer names its Idempotency-Key (SPEC section 5)."""

    metadata_class = None  # OPTIONS has no body to describe here: 405, not a 500

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: CompletionSerializer, **error_responses(400, 402, 404, 409, 422, 503)},
    )
    def complete(self, request: Request, pk: str) -> HttpResponse:
        key = parse_key(request.headers.get("Idempotency-Key"))
        if key is None:
            key = new_key()
        self.idempotency_key = key
        idempotent = IdempotentRequest(
            scope=STORE_SCOPE,
            key=key,
            method=request.method or "POST",
            path=request.path,
            fingerprint=fingerprint(request.body),
        )
        outcome = cart_complete(cart_id=pk, request=idempotent, render=render_completion)
        if isinstance(outcome, Finished):
            response = HttpResponse(
                outcome.body, status=outcome.status, content_type="application/json"
            )
            if outcome.replayed:
                response["Idempotent-Replayed"] = "true"
            return response
        return Response({"type": "cart", "data": cart_document(outcome.cart)})

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        key = getattr(self, "idempotency_key", None)
        if key is not None:
            response["Idempotency-Key"] = key
            response["Access-Control-Expose-Headers"] = "Idempotency-Key"
        return response


class OrderViewSet(viewsets.GenericViewSet):
    serializer_class = OrderSerializer

    @extend_schema(responses={200: OrderSerializer, **error_responses(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(order_document(order_get(pk)))
