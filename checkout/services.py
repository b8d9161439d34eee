"""Cart services: line items, region changes and the cart's payment sessions.

Every change locks the cart row first (the first lock of the fixed order cart -> key ->
session -> payment -> order) and refuses a cart whose completion is in flight or done.
Provider calls for the change run after that transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Prefetch

from checkout.models import Cart, LineItem, Product, ProductPrice, Region
from payments import errors
from payments.idempotency import idempotency_resource_busy
from payments.models import Payment, PaymentProvider, PaymentSession
from payments.services import (
    STOREFRONT,
    Actor,
    payment_session_create,
    payment_session_delete,
    payment_session_select,
    payment_session_update_amount,
    payment_session_update_data,
)

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
    with transaction.atomic():
        cart = cart_lock_for_change(cart_id, contents=region_id is not _UNSET)
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
        payment_session_delete(session=session, actor=actor)
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
    with transaction.atomic():
        cart = cart_lock_for_change(cart_id)
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
    with transaction.atomic():
        cart = cart_lock_for_change(cart_id)
        item = _item(cart, item_id)
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
    """Bring every initiated session to the cart's total at its provider (SPEC section 4)."""
    cart = cart_get(cart_id)
    total = cart.total
    changed = False
    for session in cart.payment_sessions.all():
        if session.amount != total and session.status != PaymentSession.Status.CANCELED:
            payment_session_update_amount(
                session=session, amount=total, email=cart.email, actor=actor
            )
            changed = True
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
    sessions of providers no longer enabled are released."""
    with transaction.atomic():
        cart_lock_for_change(cart_id, contents=False)
    cart = cart_get(cart_id)
    enabled = _enabled_provider_ids(cart.region_id)
    existing = {s.provider_id: s for s in cart.payment_sessions.all()}
    for provider_id, session in existing.items():
        if provider_id not in enabled:
            payment_session_delete(session=session, actor=actor)
    for provider_id in enabled:
        if provider_id not in existing:
            payment_session_create(
                cart_id=cart.id,
                provider_id=provider_id,
                amount=cart.total,
                currency_code=cart.currency_code,
                email=cart.email,
                actor=actor,
            )
    return cart_sync_sessions(cart_id, actor=actor)


def cart_payment_session_select(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    region_id = Cart.objects.filter(pk=cart_id).values_list("region_id", flat=True).first()
    if region_id is None:
        raise errors.NotFound("No cart with this id.")
    if provider_id not in _enabled_provider_ids(region_id):
        raise errors.ProviderNotAvailable(
            f"Provider {provider_id!r} is not enabled in this region."
        )
    if not PaymentSession.objects.filter(cart_id=cart_id, provider_id=provider_id).exists():
        cart_payment_sessions_create(cart_id=cart_id, actor=actor)
    with transaction.atomic():
        cart_lock_for_change(cart_id, contents=False)
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
    with transaction.atomic():
        cart_lock_for_change(cart_id, contents=False)
    session = _session(cart_get(cart_id), provider_id)
    payment_session_update_data(session=session, data=data, actor=actor)
    return cart_get(cart_id)


def cart_payment_session_refresh(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    """Re-create the session at the provider (the old one is released), keeping the selection."""
    with transaction.atomic():
        cart_lock_for_change(cart_id, contents=False)
    cart = cart_get(cart_id)
    session = _session(cart, provider_id)
    payment_session_delete(session=session, actor=actor)
    payment_session_create(
        cart_id=cart.id,
        provider_id=provider_id,
        amount=cart.total,
        currency_code=cart.currency_code,
        email=cart.email,
        is_selected=session.is_selected,
        actor=actor,
    )
    return cart_get(cart_id)


def cart_payment_session_delete(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    with transaction.atomic():
        cart_lock_for_change(cart_id, contents=False)
    payment_session_delete(session=_session(cart_get(cart_id), provider_id), actor=actor)
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
