"""What the customer is buying, as the payment services pass it to a provider's session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.base import PurchaseLine


@dataclass(frozen=True)
class Purchase:
    """The cart's side of a session: who buys, where, and the order lines (Klarna shows
    them to the customer). The session itself holds the amount and the currency."""

    email: str = ""
    country: str = ""
    lines: tuple[PurchaseLine, ...] = ()

    def session_fields(self) -> dict[str, Any]:
        return {"email": self.email, "country": self.country, "lines": self.lines}
