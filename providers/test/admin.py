from django.contrib import admin
from unfold.admin import ModelAdmin

from providers.test.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ModelAdmin):
    """The sandbox's "remote side": a developer's table (the back office's Developer
    section), so a superuser's only, whatever view permissions a group hands out."""

    list_display = [
        "created_at",
        "operation",
        "session_id",
        "amount",
        "idempotency_key",
        "reference",
    ]
    list_filter = ["operation"]
    search_fields = ["session_id", "reference", "authorization", "idempotency_key"]

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
