"""The payment domain in the back office.

base         read-only rows, money columns, day ranges, totals and CSV of a list
money_pages  capture, refund and cancel confirmation pages (orders' and payments')
payments     payments, refunds, the event ledger, operations needing attention
developer    the machinery's tables, for superusers only
"""

from payments.admin import developer, payments  # noqa: F401  (registers the admins)
from payments.admin.base import DeveloperOnlyAdmin, ListToolsAdmin, ReadOnlyAdmin, money_column

__all__ = ["DeveloperOnlyAdmin", "ListToolsAdmin", "ReadOnlyAdmin", "money_column"]
