"""The machinery's own tables: idempotency keys, payment sessions, API tokens. They explain
what happened to a developer; an operator never needs them, so only superusers see them."""

from __future__ import annotations

from django.contrib import admin
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy
from unfold.admin import ModelAdmin

from payments.admin.base import DeveloperOnlyAdmin, money_column
from payments.models import IdempotencyKey, PaymentSession


@admin.register(PaymentSession)
class PaymentSessionAdmin(DeveloperOnlyAdmin):
    list_display = [
        "id",
        "cart",
        "provider",
        "status",
        "is_selected",
        "amount_display",
        "created_at",
    ]
    list_filter = ["provider", "status", "is_selected"]
    search_fields = ["id", "cart__id"]
    list_select_related = ["cart", "provider"]
    amount_display = money_column("amount", "Amount")


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(DeveloperOnlyAdmin):
    list_display = [
        "key",
        "scope",
        "request_method",
        "request_path",
        "recovery_point",
        "response_code",
        "locked_at",
        "created_at",
    ]
    list_filter = ["scope", "recovery_point"]
    search_fields = ["key", "resource_id", "request_path"]
    exclude = ["response_body"]


# API tokens (SPEC section 10) ------------------------------------------------------------
# DRF's own TokenAdmin lists every key to anyone with `view_tokenproxy`, and a key is as good
# as its owner's password on /api/admin/. Only a superuser, who could make any token anyway,
# sees or manages them; `manage.py drf_create_token <user>` stays the way to issue one.
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class SuperuserTokenAdmin(TokenAdmin, ModelAdmin):
    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser
