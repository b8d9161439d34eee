"""Cart services: line items, region changes and the cart's payment sessions.

Every change locks the cart row first (the first lock of the fixed order cart -> key ->
session -> payment -> order), refuses a cart whose completion is in flight or done, and
holds a CartChange lease until its provider calls are over, so a completion cannot start
in between. Provider calls run outside any transaction. A provider that is down fails
only its own session.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Prefetch
from django.db.models.functions import Now

from checkout.models import Cart, CartChange, LineItem, Product, ProductPrice, Region
from payments import errors
from payments.idempotency import idempotency_resource_busy
from payments.models import Payment, PaymentProvider, PaymentSession
from payments.purchase import Purchase
from payments.services import STOREFRONT, Actor
from payments.services.operations import lease_from_now
from payments.services.sessions import (
    payment_session_create,
    payment_session_initiate,
    payment_session_release,
    payment_session_select,
    payment_session_update_amount,
    payment_session_update_data,
    session_is_initiated,
)
from providers.base import PurchaseLine, SessionStatus

logger = logging.getLogger(__name__)
# What a provider that is down or refuses raises for its own session.
PROVIDER_ERRORS = (errors.ProviderUnavailable, errors.ProviderFailed)

MAX_QUANTITY = 1000
_UNSET: Any = object()


def cart_queryset():  # type: ignore[no-untyped-def]
    """A cart with everything its answer shows, in a fixed number of queries."""
    return Cart.objects.select_related("region", "order").prefetch_related(
        "items",
        Prefetch("payment_sessions", queryset=PaymentSession.objects.order_by("created_at", "id")),
    )


def cart_get(cart_id: str) -> Cart:
    try:
        return cart_queryset().get(pk=cart_id)
    except Cart.DoesNotExist:
        raise errors.NotFound("No cart with this id.") from None


def cart_lock(cart_id: str) -> Cart:
    """Lock the cart row: the first lock of every cart change and of every completion step."""
    try:
        return Cart.objects.select_for_update().get(pk=cart_id)
    except Cart.DoesNotExist:
        raise errors.NotFound("No cart with this id.") from None


def cart_lock_for_change(cart_id: str, *, contents: bool = True) -> Cart:
    """Lock a cart the storefront may change; `contents` (items, region) of a swap's cart
    are the swap's, not the customer's."""
    cart = cart_lock(cart_id)
    if cart.completed_at is not None:
        raise errors.CartCompleted("This cart is completed.")
    if contents and cart.type == Cart.Type.SWAP:
        raise errors.InvalidState("The items of a swap's cart are set by its swap.")
    # An authorized payment waits for its order (or a cancel, which frees the cart again).
    authorized = cart.payment_authorized_at is not None and (
        Payment.objects.filter(cart_id=cart.pk, canceled_at__isnull=True).exists()
    )
    if authorized or idempotency_resource_busy(cart.id):
        raise errors.CartCompletionInProgress("This cart is being completed.")
    return cart


@contextlib.contextmanager
def cart_change(cart_id: str, *, contents: bool = True) -> Iterator[Cart]:
    """Hold a change lease on the cart from the check to the end of the change's provider
    calls. The caller makes its row changes in a transaction of its own inside."""
    with transaction.atomic():
        cart = cart_lock_for_change(cart_id, contents=contents)
        lease = CartChange.objects.create(cart=cart, expires_at=lease_from_now())
    try:
        yield cart
    finally:
        CartChange.objects.filter(pk=lease.pk).delete()


def cart_changing(cart_id: str) -> bool:
    """Whether a change's provider calls are in flight; the caller holds the cart's lock."""
    return CartChange.objects.filter(cart_id=cart_id, expires_at__gt=Now()).exists()


def cart_purchase(cart: Cart) -> Purchase:
    """What the customer buys, as the providers see it (Klarna's order lines, say)."""
    countries = cart.region.countries
    return Purchase(
        email=cart.email,
        country=countries[0] if countries else "",
        lines=tuple(
            PurchaseLine(
                reference=item.product_id,
                title=item.title,
                quantity=item.quantity,
                unit_price=item.unit_price,
                total=item.total,
            )
            for item in cart.items.all()
        ),
    )


def region_get(region_id: str) -> Region:
    try:
        return Region.objects.get(pk=region_id)
    except Region.DoesNotExist:
        raise errors.InvalidData(
            "Unknown region.", fields={"region_id": ["Unknown region."]}
        ) from None


def _price(product_id: str, currency_code: str) -> ProductPrice:
    price = (
        ProductPrice.objects.select_related("product")
        .filter(product_id=product_id, currency_code=currency_code)
        .first()
    )
    if price is None:
        message = "No such product for sale in this cart's currency."
        raise errors.InvalidData(message, fields={"product_id": [message]})
    return price


# Cart and items -----------------------------------------------------------------------


def cart_create(*, region_id: str, email: str = "") -> Cart:
    region = region_get(region_id)
    return Cart.objects.create(region=region, currency_code=region.currency_code, email=email)


def cart_update(
    *, cart_id: str, email: str = _UNSET, region_id: str = _UNSET, actor: Actor = STOREFRONT
) -> Cart:
    """Change the email or the region. A new region re-prices the items in its currency
    (items not sold there are removed) and cancels the old sessions at their providers."""
    with cart_change(cart_id, contents=region_id is not _UNSET):
        with transaction.atomic():
            cart = cart_lock(cart_id)
            if email is not _UNSET:
                cart.email = email
            region_changed = region_id is not _UNSET and region_id != cart.region_id
            if region_changed:
                region = region_get(region_id)
                cart.region = region
                cart.currency_code = region.currency_code
                _reprice_items(cart)
            cart.save()
            stale_sessions = list(cart.payment_sessions.all()) if region_changed else []
        for session in stale_sessions:
            payment_session_release(session=session, actor=actor, delete=True)
    return cart_get(cart_id)


def _reprice_items(cart: Cart) -> None:
    items = list(cart.items.all())
    prices = {
        p.product_id: p.amount
        for p in ProductPrice.objects.filter(
            product_id__in=[i.product_id for i in items], currency_code=cart.currency_code
        )
    }
    for item in items:
        if item.product_id in prices:
            item.unit_price = prices[item.product_id]
            item.save(update_fields=["unit_price"])
        else:
            item.delete()


def line_item_add(*, cart_id: str, product_id: str, quantity: int) -> Cart:
    """Add a product at its catalogue price; adding it again adds to its quantity."""
    with cart_change(cart_id):
        with transaction.atomic():
            cart = cart_lock(cart_id)
            price = _price(product_id, cart.currency_code)
            item = LineItem.objects.filter(cart=cart, product_id=product_id).first()
            new_quantity = quantity + (item.quantity if item else 0)
            if new_quantity > MAX_QUANTITY:
                message = f"At most {MAX_QUANTITY} of one product per cart."
                raise errors.InvalidData(message, fields={"quantity": [message]})
            if item is None:
                LineItem.objects.create(
                    cart=cart,
                    product_id=product_id,
                    title=price.product.title,
                    unit_price=price.amount,
                    quantity=new_quantity,
                )
            else:
                item.quantity = new_quantity
                item.save(update_fields=["quantity"])
        return cart_sync_sessions(cart_id)


def line_item_update(*, cart_id: str, item_id: str, quantity: int) -> Cart:
    """Set an item's quantity; 0 removes it."""
    with cart_change(cart_id):
        with transaction.atomic():
            item = _item(cart_lock(cart_id), item_id)
            if quantity == 0:
                item.delete()
            else:
                item.quantity = quantity
                item.save(update_fields=["quantity"])
        return cart_sync_sessions(cart_id)


def line_item_delete(*, cart_id: str, item_id: str) -> Cart:
    return line_item_update(cart_id=cart_id, item_id=item_id, quantity=0)


def _item(cart: Cart, item_id: str) -> LineItem:
    try:
        return LineItem.objects.get(pk=item_id, cart=cart)
    except LineItem.DoesNotExist:
        raise errors.NotFound("No such item in this cart.") from None


def cart_sync_sessions(cart_id: str, *, actor: Actor = STOREFRONT) -> Cart:
    """Bring every initiated session to the cart's total at its provider (SPEC section 4).
    A provider that fails marks only its own session `error`; the change stands."""
    cart = cart_get(cart_id)
    total = cart.total
    changed = False
    for session in cart.payment_sessions.all():
        if session.amount != total and session.status != SessionStatus.CANCELED:
            changed = True
            try:
                payment_session_update_amount(
                    session=session, amount=total, purchase=cart_purchase(cart), actor=actor
                )
            except PROVIDER_ERRORS:
                logger.warning("Session %s could not follow its cart's total", session.id)
    return cart_get(cart_id) if changed else cart


# Payment sessions ---------------------------------------------------------------------


def _enabled_provider_ids(region_id: str) -> list[str]:
    return list(
        PaymentProvider.objects.filter(regions__id=region_id, is_installed=True)
        .order_by("id")
        .values_list("id", flat=True)
    )


def cart_payment_sessions_create(*, cart_id: str, actor: Actor = STOREFRONT) -> Cart:
    """One session per provider enabled and installed in the region, each at the cart total;
    sessions of providers no longer enabled are released. A provider that is down shows its
    session as `error` and the others carry on."""
    with cart_change(cart_id, contents=False):
        _sessions_create(cart_id, actor)
        return cart_sync_sessions(cart_id, actor=actor)


def _sessions_create(cart_id: str, actor: Actor) -> None:
    cart = cart_get(cart_id)
    enabled = _enabled_provider_ids(cart.region_id)
    existing = {s.provider_id: s for s in cart.payment_sessions.all()}
    for provider_id, session in existing.items():
        if provider_id not in enabled:
            payment_session_release(session=session, actor=actor, delete=True)
    for provider_id in enabled:
        try:
            _session_open(cart, provider_id, existing.get(provider_id), actor)
        except PROVIDER_ERRORS:
            logger.warning("Provider %s could not open a session for %s", provider_id, cart.id)


def _session_open(
    cart: Cart, provider_id: str, session: PaymentSession | None, actor: Actor
) -> None:
    """Make the provider's session, or open again one whose provider was down when it was
    made (under the same key, so a lost answer's remote object is found, not doubled)."""
    if session is None:
        payment_session_create(
            cart_id=cart.id,
            provider_id=provider_id,
            amount=cart.total,
            currency_code=cart.currency_code,
            purchase=cart_purchase(cart),
            actor=actor,
        )
    elif session.status == SessionStatus.ERROR and not session_is_initiated(session):
        payment_session_initiate(session=session, purchase=cart_purchase(cart), actor=actor)


def cart_payment_session_select(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    """Select the provider's session, opening it first if needed. The customer needs this
    one: a provider that is down answers 503 with Retry-After."""
    cart = cart_get(cart_id)
    if provider_id not in _enabled_provider_ids(cart.region_id):
        raise errors.ProviderNotAvailable(
            f"Provider {provider_id!r} is not enabled in this region."
        )
    session = next((s for s in cart.payment_sessions.all() if s.provider_id == provider_id), None)
    if session is not None and session.status != SessionStatus.ERROR:
        # Nothing to ask the provider: select under the cart's lock alone.
        with transaction.atomic():
            cart_lock_for_change(cart_id, contents=False)
            payment_session_select(cart_id=cart_id, provider_id=provider_id)
        return cart_get(cart_id)
    with cart_change(cart_id, contents=False):
        _session_open(cart, provider_id, session, actor)
        with transaction.atomic():
            cart_lock(cart_id)
            payment_session_select(cart_id=cart_id, provider_id=provider_id)
    return cart_get(cart_id)


def _session(cart: Cart, provider_id: str) -> PaymentSession:
    session = next((s for s in cart.payment_sessions.all() if s.provider_id == provider_id), None)
    if session is None:
        raise errors.NotFound("This cart has no session with this provider.")
    return session


def cart_payment_session_update_data(
    *, cart_id: str, provider_id: str, data: Mapping[str, Any], actor: Actor = STOREFRONT
) -> Cart:
    with cart_change(cart_id, contents=False):
        cart = cart_get(cart_id)
        payment_session_update_data(
            session=_session(cart, provider_id),
            data=data,
            purchase=cart_purchase(cart),
            actor=actor,
        )
    return cart_get(cart_id)


def cart_payment_session_refresh(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    """Re-create the session at the provider (the old one is released), keeping the
    selection and the storefront's return and cancel URLs."""
    with cart_change(cart_id, contents=False):
        cart = cart_get(cart_id)
        session = _session(cart, provider_id)
        payment_session_release(session=session, actor=actor, delete=True)
        payment_session_create(
            cart_id=cart.id,
            provider_id=provider_id,
            amount=cart.total,
            currency_code=cart.currency_code,
            purchase=cart_purchase(cart),
            is_selected=session.is_selected,
            data=session.data,
            actor=actor,
        )
    return cart_get(cart_id)


def cart_payment_session_delete(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    with cart_change(cart_id, contents=False):
        session = _session(cart_get(cart_id), provider_id)
        payment_session_release(session=session, actor=actor, delete=True)
    return cart_get(cart_id)


def products_for_region(region_id: str) -> list[tuple[Product, int]]:
    """Products sold in the region's currency, with their price there."""
    region = region_get(region_id)
    prices = ProductPrice.objects.filter(currency_code=region.currency_code).select_related(
        "product"
    )
    return [
        (price.product, price.amount) for price in prices.order_by("product__title", "product_id")
    ]
