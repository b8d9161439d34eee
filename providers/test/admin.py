from django.contrib import admin

from providers.test.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
