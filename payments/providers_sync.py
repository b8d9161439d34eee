"""Sync PaymentProvider rows with the providers configured in settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from payments.models import PaymentProvider
from providers.registry import configured_providers


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    reinstalled: list[str] = field(default_factory=list)
    uninstalled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def providers_sync() -> SyncReport:
    """Configured providers become installed rows; the others stay, `is_installed=false`,
    so the regions and payments that reference them keep their history."""
    configured = set(configured_providers())
    report = SyncReport()
    with transaction.atomic():
        rows = {p.id: p for p in PaymentProvider.objects.select_for_update()}
        for identifier in sorted(configured):
            row = rows.get(identifier)
            if row is None:
                PaymentProvider.objects.create(id=identifier, is_installed=True)
                report.added.append(identifier)
            elif not row.is_installed:
                PaymentProvider.objects.filter(pk=identifier).update(is_installed=True)
                report.reinstalled.append(identifier)
            else:
                report.unchanged.append(identifier)
        for identifier in sorted(set(rows) - configured):
            if rows[identifier].is_installed:
                PaymentProvider.objects.filter(pk=identifier).update(is_installed=False)
                report.uninstalled.append(identifier)
    return report
