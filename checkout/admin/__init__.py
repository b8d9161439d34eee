"""The store operator's back office, on Django's admin with the unfold theme.

    navigation    the sidebar, in the order of an operator's day
    dashboard     the home page's figures and charts
    orders        the order list and the order page
    bulk_capture  capturing many orders at once
    timeline      the order page's provider calls in an operator's words
    store         regions and providers, catalogue, carts, swaps, the team
    webhooks      failed webhooks, processed again by an operator

Money actions (capture, refund, cancel) each have their own confirmation page
(payments.admin.money_pages) behind their model permission and call the same services as
the admin API; a provider failure or a refused amount comes back on the form, never as an
error page.
"""

from django.contrib import admin

from checkout.admin import orders, store, webhooks  # noqa: F401  (registers the admins)
from checkout.admin.timeline import operation_in_words

__all__ = ["operation_in_words"]

admin.site.site_header = "Payments back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Today"
