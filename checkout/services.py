"""Cart services: line items, region changes and the cart's payment sessions.

Every change locks the cart row first (the first lock of the fixed order cart -> key ->
session -> payment -> order), refuses a cart whose completion is in flight or done, and,
when it has provider calls to make, takes a CartChange lease in that same transaction and
holds it until they are over, so a completion cannot start in between. Provider calls run
outside any transaction. A provider that is down fails only its own session. Each step
answers with the rows it read under the lock or wrote, not with a second read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, prefetch_related_objects
from django.db.models.functions import Now

from checkout.models import Cart, CartChange, LineItem, Product, ProductPrice, Region
from payments import errors
from payments.idempotency import idempotency_resource_busy, live_keys_of
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


# What a cart's answer shows besides its row: two queries.
CART_CONTENTS = (
    "items",
    Prefetch("payment_sessions", queryset=PaymentSession.objects.order_by("created_at", "id")),
)


def cart_queryset():  # type: ignore[no-untyped-def]
    """A cart with everything its answer shows, in a fixed number of queries."""
    return Cart.objects.select_related("region", "order").prefetch_related(*CART_CONTENTS)


def cart_contents_read(cart: Cart) -> Cart:
    """Read the items and sessions of a cart the caller has (under its lock, say)."""
    prefetch_related_objects([cart], *CART_CONTENTS)
    return cart


def cart_contents_set(
    cart: Cart, items: list[LineItem], sessions: list[PaymentSession] | None = None
) -> Cart:
    """Give the cart the items (and sessions) the caller just read or wrote, so that its
    answer is rendered without reading them again (Django keeps prefetched rows in
    `_prefetched_objects_cache`, keyed by the relation's name)."""
    cache = cart.__dict__.setdefault("_prefetched_objects_cache", {})
    cache["items"] = sorted(items, key=lambda item: item.pk)
    if sessions is not None:
        cache["payment_sessions"] = sorted(sessions, key=lambda s: (s.created_at, s.pk))
    return cart


def cart_get(cart_id: str) -> Cart:
    try:
        return cart_queryset().get(pk=cart_id)
    except Cart.DoesNotExist:
        raise errors.NotFound("No cart with this id.") from None


def cart_lock(cart_id: str) -> Cart:
    """Lock the cart row (its region read along): the first lock of every cart change and
    of every completion step."""
    try:
        return Cart.objects.select_for_update(of=("self",)).select_related("region").get(pk=cart_id)
    except Cart.DoesNotExist:
        raise errors.NotFound("No cart with this id.") from None


def cart_checks(cart: Cart, **checks: Exists) -> dict[str, bool]:
    """Several checks about a cart whose lock the caller holds, in one statement. Not in
    the locking statement itself: PostgreSQL re-reads only the locked row after waiting for
    it, so a check there would see the database as it was before the wait."""
    return Cart.objects.filter(pk=cart.pk).annotate(**checks).values(*checks).get()


def cart_completing_by_others(key_scope: str, key: str) -> Exists:
    """A cart check: a live request holds another key completing the cart."""
    return Exists(live_keys_of(OuterRef("pk")).exclude(scope=key_scope, key=key))


def cart_changing() -> Exists:
    """A cart check: a change's provider calls are in flight (its lease has not expired)."""
    return Exists(CartChange.objects.filter(cart_id=OuterRef("pk"), expires_at__gt=Now()))


def cart_lock_for_change(cart_id: str, *, contents: bool = True) -> Cart:
    """Lock a cart the storefront may change; `contents` (items, region) of a swap's cart
    are the swap's, not the customer's."""
    cart = cart_lock(cart_id)
    cart_change_check(cart, contents=contents)
    return cart


def cart_change_check(cart: Cart, *, contents: bool = True) -> None:
    """Refuse a change of a locked cart that is completed or being completed."""
    if cart.completed_at is not None:
        raise errors.CartCompleted("This cart is completed.")
    if contents and cart.type == Cart.Type.SWAP:
        raise errors.InvalidState("The items of a swap's cart are set by its swap.")
    # An authorized payment waits for its order (or a cancel, which frees the cart again).
    authorized = cart.payment_authorized_at is not None and (
        Payment.objects.filter(cart_id=cart.pk, canceled_at__isnull=True).exists()
    )
    # A completion writes its key on the cart in the transaction that leases the key: a
    # cart that has none was never being completed.
    if authorized or (cart.idempotency_key and idempotency_resource_busy(cart.id)):
        raise errors.CartCompletionInProgress("This cart is being completed.")


def change_lease_take(cart: Cart) -> CartChange:
    """In the transaction holding the cart's lock: no completion starts until the change's
    provider calls are over (or the lease expires, if the changer died)."""
    return CartChange.objects.create(cart=cart, expires_at=lease_from_now())


@contextlib.contextmanager
def cart_change(cart_id: str, *, contents: bool = True) -> Iterator[Cart]:
    """Hold a change lease on the cart from the check to the end of the change's provider
    calls. The caller makes its row changes in a transaction of its own inside."""
    with transaction.atomic():
        cart = cart_lock_for_change(cart_id, contents=contents)
        lease = change_lease_take(cart)
    try:
        yield cart
    finally:
        CartChange.objects.filter(pk=lease.pk).delete()


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
    cart = Cart.objects.create(region=region, currency_code=region.currency_code, email=email)
    return cart_contents_set(cart, items=[], sessions=[])


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
    with transaction.atomic():
        cart = cart_contents_read(cart_lock_for_change(cart_id))
        price = _price(product_id, cart.currency_code)
        items = list(cart.items.all())
        item = next((i for i in items if i.product_id == product_id), None)
        new_quantity = quantity + (item.quantity if item else 0)
        if new_quantity > MAX_QUANTITY:
            message = f"At most {MAX_QUANTITY} of one product per cart."
            raise errors.InvalidData(message, fields={"quantity": [message]})
        if item is None:
            items.append(
                LineItem.objects.create(
                    cart=cart,
                    product_id=product_id,
                    title=price.product.title,
                    unit_price=price.amount,
                    quantity=new_quantity,
                )
            )
        else:
            item.quantity = new_quantity
            item.save(update_fields=["quantity"])
        cart_contents_set(cart, items, list(cart.payment_sessions.all()))
        lease = _sessions_follow_lease(cart)
    return _sessions_follow(cart, lease)


def line_item_update(*, cart_id: str, item_id: str, quantity: int) -> Cart:
    """Set an item's quantity; 0 removes it."""
    with transaction.atomic():
        cart = cart_contents_read(cart_lock_for_change(cart_id))
        items = list(cart.items.all())
        item = next((i for i in items if i.pk == item_id), None)
        if item is None:
            raise errors.NotFound("No such item in this cart.")
        if quantity == 0:
            item.delete()
            items.remove(item)
        else:
            item.quantity = quantity
            item.save(update_fields=["quantity"])
        cart_contents_set(cart, items, list(cart.payment_sessions.all()))
        lease = _sessions_follow_lease(cart)
    return _sessions_follow(cart, lease)


def line_item_delete(*, cart_id: str, item_id: str) -> Cart:
    return line_item_update(cart_id=cart_id, item_id=item_id, quantity=0)


def _session_behind(session: PaymentSession, total: int) -> bool:
    return session.amount != total and session.status != SessionStatus.CANCELED


def _sessions_follow_lease(cart: Cart) -> CartChange | None:
    """Under the cart's lock, after a change of its items: a change lease when a session
    must follow the new total at its provider; None (no lease, no provider call) when none
    must, as before the customer opens any."""
    total = cart.total
    if any(_session_behind(s, total) for s in cart.payment_sessions.all()):
        return change_lease_take(cart)
    return None


def _sessions_follow(cart: Cart, lease: CartChange | None) -> Cart:
    """The provider calls of a change, outside its transaction, then its lease let go."""
    if lease is None:
        return cart
    try:
        return cart_sync_sessions(cart)
    finally:
        CartChange.objects.filter(pk=lease.pk).delete()


def cart_sync_sessions(cart: Cart, *, actor: Actor = STOREFRONT) -> Cart:
    """Bring every initiated session of the (read) cart to its total at its provider (SPEC
    section 4). A provider that fails marks only its own session `error`; the change
    stands. Returns the cart as it now is."""
    total = cart.total
    changed = False
    for session in cart.payment_sessions.all():
        if _session_behind(session, total):
            changed = True
            try:
                payment_session_update_amount(
                    session=session, amount=total, purchase=cart_purchase(cart), actor=actor
                )
            except PROVIDER_ERRORS:
                logger.warning("Session %s could not follow its cart's total", session.id)
    return cart_get(cart.id) if changed else cart


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
    with transaction.atomic():
        cart = cart_contents_read(cart_lock_for_change(cart_id, contents=False))
        lease = change_lease_take(cart)
    try:
        sessions = _sessions_create(cart, actor)
        cart_contents_set(cart, list(cart.items.all()), sessions)
        return cart_sync_sessions(cart, actor=actor)
    finally:
        CartChange.objects.filter(pk=lease.pk).delete()


def _sessions_create(cart: Cart, actor: Actor) -> list[PaymentSession]:
    """The cart's sessions afterwards: as this call left them, or read again when a
    provider failed (its session's `error` is in the database, not here)."""
    enabled = _enabled_provider_ids(cart.region_id)
    sessions = {s.provider_id: s for s in cart.payment_sessions.all()}
    for provider_id, session in list(sessions.items()):
        if provider_id not in enabled:
            payment_session_release(session=session, actor=actor, delete=True)
            del sessions[provider_id]
    failed = False
    for provider_id in enabled:
        try:
            sessions[provider_id] = _session_open(
                cart, provider_id, sessions.get(provider_id), actor
            )
        except PROVIDER_ERRORS:
            failed = True
            logger.warning("Provider %s could not open a session for %s", provider_id, cart.id)
    if failed:
        return list(PaymentSession.objects.filter(cart_id=cart.id).order_by("created_at", "id"))
    return list(sessions.values())


def _session_open(
    cart: Cart, provider_id: str, session: PaymentSession | None, actor: Actor
) -> PaymentSession:
    """Make the provider's session, or open again one whose provider was down when it was
    made (under the same key, so a lost answer's remote object is found, not doubled)."""
    if session is None:
        return payment_session_create(
            cart_id=cart.id,
            provider_id=provider_id,
            amount=cart.total,
            currency_code=cart.currency_code,
            purchase=cart_purchase(cart),
            actor=actor,
        )
    if session.status == SessionStatus.ERROR and not session_is_initiated(session):
        return payment_session_initiate(session=session, purchase=cart_purchase(cart), actor=actor)
    return session


def cart_payment_session_select(
    *, cart_id: str, provider_id: str, actor: Actor = STOREFRONT
) -> Cart:
    """Select the provider's session, opening it first if needed. The customer needs this
    one: a provider that is down answers 503 with Retry-After."""
    with transaction.atomic():
        cart = cart_lock(cart_id)
        if provider_id not in _enabled_provider_ids(cart.region_id):
            raise errors.ProviderNotAvailable(
                f"Provider {provider_id!r} is not enabled in this region."
            )
        cart_change_check(cart, contents=False)
        cart_contents_read(cart)
        sessions = list(cart.payment_sessions.all())
        session = next((s for s in sessions if s.provider_id == provider_id), None)
        if session is not None and session.status != SessionStatus.ERROR:
            # Nothing to ask the provider: select under the cart's lock alone.
            payment_session_select(sessions=sessions, provider_id=provider_id)
            return cart
    with cart_change(cart_id, contents=False):
        _session_open(cart, provider_id, session, actor)
        with transaction.atomic():
            cart = cart_contents_read(cart_lock(cart_id))
            payment_session_select(
                sessions=list(cart.payment_sessions.all()), provider_id=provider_id
            )
    return cart


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
