"""The admin API of the checkout domain (SPEC section 6): regions, products, orders and
their money operations, swaps. Thin views over checkout services; every POST goes through
its Idempotency-Key."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from checkout import catalogue
from checkout.admin_selectors import order_admin_get, orders_admin_list, orders_attach_events
from checkout.api.admin_serializers import (
    AdminOrderSerializer,
    AdminProductSerializer,
    AdminRegionSerializer,
    ProductCreateInput,
    RegionCreateInput,
    RegionProviderInput,
    RegionUpdateInput,
    SwapCreateInput,
)
from checkout.api.serializers import SwapSerializer
from checkout.models import Order, Product, Region
from checkout.orders import order_cancel, order_capture, order_refund
from checkout.swaps import swap_cancel, swap_create, swap_get, swap_process_payment
from payments import errors
from payments.api.admin_base import ADMIN_ERRORS, POST_ERRORS, AdminViewSet
from payments.api.admin_serializers import RefundInput
from payments.api.fields import error_responses, validated
from payments.api.schema import IDEMPOTENT
from payments.audit import staff_action_log
from payments.services import Actor

READ_ERRORS = error_responses(*ADMIN_ERRORS, 404)
WRITE_ERRORS = error_responses(*POST_ERRORS)
MONEY_ERRORS = error_responses(*POST_ERRORS, 502, 503)


def _region(region_id: str) -> dict[str, Any]:
    region = Region.objects.prefetch_related("payment_providers").filter(pk=region_id).first()
    if region is None:
        raise errors.NotFound("No region with this id.")
    return AdminRegionSerializer(region).data


def _order(order_id: str) -> dict[str, Any]:
    return AdminOrderSerializer(order_admin_get(order_id)).data


def _swap(swap_id: str) -> dict[str, Any]:
    return SwapSerializer(swap_get(swap_id)).data


class RegionViewSet(AdminViewSet):
    serializer_class = AdminRegionSerializer
    action_permissions = {
        "create": ("checkout.add_region",),
        "update": ("checkout.change_region",),
        "add_provider": ("checkout.change_region",),
        "remove_provider": ("checkout.change_region",),
    }

    @extend_schema(responses={200: AdminRegionSerializer(many=True), **READ_ERRORS})
    def list(self, request: Request) -> Response:
        regions = Region.objects.prefetch_related("payment_providers").order_by("name", "id")
        return Response(AdminRegionSerializer(regions, many=True).data)

    @extend_schema(
        request=RegionCreateInput,
        parameters=IDEMPOTENT,
        responses={201: AdminRegionSerializer, **WRITE_ERRORS},
        description="Only installed providers can be enabled (422 provider_not_available).",
    )
    def create(self, request: Request) -> HttpResponse:
        data = validated(RegionCreateInput, request)
        return self.idempotent(
            request, lambda _key: (201, _region(catalogue.region_create(**data).pk)), atomic=True
        )

    @extend_schema(responses={200: AdminRegionSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(_region(pk))

    @extend_schema(
        request=RegionUpdateInput,
        parameters=IDEMPOTENT,
        responses={200: AdminRegionSerializer, **WRITE_ERRORS},
        description="`payment_providers` replaces the enabled set. The currency cannot "
        "change once carts were priced in it (409 invalid_state).",
    )
    def update(self, request: Request, pk: str) -> HttpResponse:
        data = validated(RegionUpdateInput, request)

        def work(_key: str) -> tuple[int, Any]:
            catalogue.region_update(region_id=pk, **data)
            return 200, _region(pk)

        return self.idempotent(request, work, resource_id=pk, atomic=True)

    @extend_schema(
        request=RegionProviderInput,
        parameters=IDEMPOTENT,
        responses={200: AdminRegionSerializer, **WRITE_ERRORS},
        description="Enable a provider: 422 provider_not_available when it is unknown or "
        "not installed.",
    )
    def add_provider(self, request: Request, pk: str) -> HttpResponse:
        provider_id = validated(RegionProviderInput, request)["provider_id"]

        def work(_key: str) -> tuple[int, Any]:
            catalogue.region_provider_add(region_id=pk, provider_id=provider_id)
            return 200, _region(pk)

        return self.idempotent(request, work, resource_id=pk, atomic=True)

    @extend_schema(request=None, responses={200: AdminRegionSerializer, **READ_ERRORS})
    def remove_provider(self, request: Request, pk: str, provider_id: str) -> Response:
        catalogue.region_provider_remove(region_id=pk, provider_id=provider_id)
        return Response(_region(pk))


class ProductViewSet(AdminViewSet):
    serializer_class = AdminProductSerializer
    action_permissions = {"create": ("checkout.add_product",)}

    @extend_schema(responses={200: AdminProductSerializer(many=True), **READ_ERRORS})
    def list(self, request: Request) -> Response:
        products = Product.objects.prefetch_related("prices").order_by("title", "id")
        return Response(AdminProductSerializer(products, many=True).data)

    @extend_schema(
        request=ProductCreateInput,
        parameters=IDEMPOTENT,
        responses={201: AdminProductSerializer, **WRITE_ERRORS},
    )
    def create(self, request: Request) -> HttpResponse:
        data = validated(ProductCreateInput, request)

        def work(_key: str) -> tuple[int, Any]:
            product = catalogue.product_create(
                title=data["title"], sku=data["sku"], prices=data.get("prices", [])
            )
            fresh = Product.objects.prefetch_related("prices").get(pk=product.pk)
            return 201, AdminProductSerializer(fresh).data

        return self.idempotent(request, work, atomic=True)


class OrderCursorPagination(CursorPagination):
    # Newest first; the id breaks ties between orders made in the same microsecond.
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # Every page has all three keys; `next` and `previous` are null at either end.
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = sorted(paginated["properties"])
        return paginated


class OrderViewSet(AdminViewSet):
    """Orders and their money: capture, refund and cancel need their payment permissions."""

    serializer_class = AdminOrderSerializer
    pagination_class = OrderCursorPagination
    action_permissions = {
        "capture": ("payments.capture_payment",),
        "refund": ("payments.refund_payment",),
        "cancel": ("payments.cancel_payment",),
        "create_swap": ("checkout.add_swap",),
    }

    @extend_schema(
        parameters=[
            OpenApiParameter("payment_status", str, enum=[c.value for c in Order.PaymentStatus]),
        ],
        # 404: a `cursor` that is not one this list made.
        responses={
            200: AdminOrderSerializer(many=True),
            **error_responses(*ADMIN_ERRORS, 400, 404),
        },
    )
    def list(self, request: Request) -> Response:
        payment_status = request.query_params.get("payment_status") or None
        if payment_status is not None and payment_status not in Order.PaymentStatus.values:
            message = f"One of {', '.join(Order.PaymentStatus.values)}."
            raise errors.InvalidData(message, fields={"payment_status": [message]})
        page = self.paginate_queryset(orders_admin_list(payment_status=payment_status))
        assert page is not None  # a pagination class is set
        orders_attach_events(page)
        return self.get_paginated_response(AdminOrderSerializer(page, many=True).data)

    @extend_schema(responses={200: AdminOrderSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(_order(pk))

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: AdminOrderSerializer, **MONEY_ERRORS},
        description="Capture every uncaptured payment in full. Needs payments.capture_payment.",
    )
    def capture(self, request: Request, pk: str) -> HttpResponse:
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            order = order_capture(order_id=pk, actor=actor, request_key=request_key)
            staff_action_log(user=request.user, obj=order, message="Captured (admin API).")
            return 200, _order(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=RefundInput,
        parameters=IDEMPOTENT,
        responses={200: AdminOrderSerializer, **MONEY_ERRORS},
        description="Refund an amount spread over the captured payments, oldest first. "
        "Needs payments.refund_payment.",
    )
    def refund(self, request: Request, pk: str) -> HttpResponse:
        data = validated(RefundInput, request)
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            order = order_refund(order_id=pk, actor=actor, request_key=request_key, **data)
            message = f"Refunded {data['amount']} ({data['reason']}) (admin API)."
            staff_action_log(user=request.user, obj=order, message=message)
            return 200, _order(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: AdminOrderSerializer, **MONEY_ERRORS},
        description="Cancel the order's authorizations and open swaps; 409 invalid_state "
        "once money was captured. Needs payments.cancel_payment.",
    )
    def cancel(self, request: Request, pk: str) -> HttpResponse:
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            order = order_cancel(order_id=pk, actor=actor, request_key=request_key)
            staff_action_log(user=request.user, obj=order, message="Canceled (admin API).")
            return 200, _order(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=SwapCreateInput,
        parameters=IDEMPOTENT,
        responses={201: SwapSerializer, **WRITE_ERRORS},
        description="Exchange items of the order. When the customer owes the difference, "
        "the swap has a `swap` cart for the storefront to complete. Needs checkout.add_swap.",
    )
    def create_swap(self, request: Request, pk: str) -> HttpResponse:
        data = validated(SwapCreateInput, request)
        actor = Actor.for_user(request.user)

        def work(_key: str) -> tuple[int, Any]:
            swap = swap_create(
                order_id=pk,
                return_items=data.get("return_items", []),
                additional_items=data.get("additional_items", []),
                actor=actor,
            )
            return 201, _swap(swap.pk)

        return self.idempotent(request, work, resource_id=pk, atomic=True)


class SwapViewSet(AdminViewSet):
    serializer_class = SwapSerializer
    action_permissions = {
        "process_payment": ("checkout.change_swap",),
        "cancel": ("checkout.change_swap", "payments.cancel_payment"),
    }

    @extend_schema(responses={200: SwapSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(_swap(pk))

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: SwapSerializer, **MONEY_ERRORS},
        description="Capture what the customer paid (needs payments.capture_payment), or "
        "refund the difference owed to them on the order (needs payments.refund_payment).",
    )
    def process_payment(self, request: Request, pk: str) -> HttpResponse:
        swap = swap_get(pk)
        if swap.difference_due > 0:
            self.require_permissions(request, "payments.capture_payment")
        elif swap.difference_due < 0:
            self.require_permissions(request, "payments.refund_payment")
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            swap = swap_process_payment(swap_id=pk, actor=actor, request_key=request_key)
            message = "Processed the payment (admin API)."
            staff_action_log(user=request.user, obj=swap, message=message)
            return 200, _swap(pk)

        return self.idempotent(request, work, resource_id=pk)

    @extend_schema(
        request=None,
        parameters=IDEMPOTENT,
        responses={200: SwapSerializer, **MONEY_ERRORS},
        description="Cancel a swap not processed yet; a payment made for it is released.",
    )
    def cancel(self, request: Request, pk: str) -> HttpResponse:
        actor = Actor.for_user(request.user)

        def work(request_key: str) -> tuple[int, Any]:
            swap = swap_cancel(swap_id=pk, actor=actor, request_key=request_key)
            staff_action_log(user=request.user, obj=swap, message="Canceled (admin API).")
            return 200, _swap(pk)

        return self.idempotent(request, work, resource_id=pk)
