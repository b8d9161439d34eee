"""Who asked for an operation, as the event ledger and the operations record it."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User


@dataclass(frozen=True)
class Actor:
    label: str
    user: User | None = None

    @classmethod
    def for_user(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        """A staff user by username; anyone else is the system."""
        if not isinstance(user, User):
            return SYSTEM
        return cls(label=user.get_username(), user=user)


STOREFRONT = Actor("storefront")
WEBHOOK = Actor("webhook")
SYSTEM = Actor("system")
