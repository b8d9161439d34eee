"""What every back-office list shares: read-only rows, money in its currency, whole-day
date ranges, totals of the filtered rows and a CSV export of them."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeDateFilter

from payments.money import format_money


def money_column(field: str, label: str):  # type: ignore[no-untyped-def]
    @admin.display(description=label, ordering=field)
    def column(self, obj):  # type: ignore[no-untyped-def]
        return format_money(getattr(obj, field), obj.currency_code)

    return column


class ReadOnlyAdmin(ModelAdmin):
    """Provider data and the ledger are written by services only."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class DeveloperOnlyAdmin(ReadOnlyAdmin):
    """The machinery's own tables (keys, sessions, the sandbox's ledger): a superuser's
    business, not an operator's, whatever view permissions a group hands out."""

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser


class DayRangeFilter(RangeDateFilter):
    """From and to as whole days in the site's time zone: `to` includes that day, where
    unfold's own filter compares a datetime with the day's first instant and drops it."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        filters = {}
        for suffix, lookup in (("_from", "gte"), ("_to", "lte")):
            value = self.used_parameters.get(f"{self.parameter_name}{suffix}")
            if isinstance(value, str) and value:
                filters[f"{self.parameter_name}__date__{lookup}"] = value
        try:
            return queryset.filter(**filters)
        except Exception:  # an unparsable day is no filter, as unfold's own does
            return None


CsvColumn = tuple[str, Callable[[Any], Any]]


def _csv_rows(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


class ListToolsAdmin(ModelAdmin):
    """A list whose filtered rows can be totalled per currency and exported as CSV.

    The export reads the changelist exactly as the list page builds it (search, filters,
    date range, ordering), so what is downloaded is what the operator was looking at. Rows
    stream in chunks: a year of orders never sits in memory as one response.
    """

    list_filter_submit = True
    list_before_template = "admin/backoffice/list_tools.html"
    # (label, field) pairs summed per currency over the filtered rows.
    totals: tuple[tuple[str, str], ...] = ()
    # The currency of a row, as a lookup from the listed model.
    currency_lookup = "currency_code"
    csv_name = "export"

    def csv_columns(self) -> list[CsvColumn]:
        raise NotImplementedError

    def csv_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def _changelist(self, request: HttpRequest) -> ChangeList:
        return self.get_changelist_instance(request)

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        # The list's own view permission, and its own get_queryset through the changelist.
        if not self.has_view_permission(request):
            raise PermissionDenied
        queryset = self.csv_queryset(self._changelist(request).get_queryset(request))
        columns = self.csv_columns()
        rows = ([value(obj) for _, value in columns] for obj in queryset.iterator(chunk_size=500))
        response = StreamingHttpResponse(
            _csv_rows([label for label, _ in columns], rows), content_type="text/csv"
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="{self.csv_name}-{stamp}.csv"'
        return response

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and self.totals:
            changelist = response.context_data.get("cl")
            if changelist is not None:
                response.context_data["list_totals"] = self.filtered_totals(changelist.queryset)
        return response

    def filtered_totals(self, queryset: QuerySet[Any]) -> list[dict[str, Any]]:
        """One line per currency over every filtered row (not only this page), in one
        aggregate query."""
        sums = {field: Sum(field) for _, field in self.totals}
        rows = (
            queryset.order_by()
            .values(currency=self._currency_field())
            .annotate(**sums)
            .order_by("currency")
        )
        return [
            {
                "currency": row["currency"].upper(),
                "figures": [
                    (label, format_money(row[field] or 0, row["currency"]))
                    for label, field in self.totals
                ],
            }
            for row in rows
        ]

    def _currency_field(self) -> Any:
        return F(self.currency_lookup)
