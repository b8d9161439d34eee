"""The back office's History (Django admin LogEntry) of what staff did with money.

SPEC section 6: every money action taken in the back office is a LogEntry on the object
acted on, beside the PaymentEvents (which record each provider call, with the staff user as
actor). The admin's History page of that object lists them.
"""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model


def staff_action_log(*, user: AbstractBaseUser | AnonymousUser, obj: Model, message: str) -> None:
    if user.pk is None:
        return  # not a staff user: nothing in the admin's History to attach it to
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[obj],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )
