"""The payment domain's services: every provider call, session change and payment write.

Views, admin actions, commands, tasks and webhooks all call these. A provider call never
runs inside an open database transaction, every call is a PaymentOperation written down
before it is sent, and every outcome leaves a PaymentEvent.

    actors      who asked (storefront, webhook, system, a staff user)
    calls       the provider guard and the event ledger's writer
    locks       row locks in the one fixed order
    operations  open, send, settle and resume a PaymentOperation
    sessions    payment sessions at their providers, and authorization
    movements   capture, refund, cancel
    recovery    the worker's sweeps over open operations
    ledger      amounts rebuilt from the ledger, for reconcile_payments
"""

from payments.services.actors import STOREFRONT, SYSTEM, WEBHOOK, Actor
from payments.services.locks import payment_get, payment_lock, payments_lock
from payments.services.movements import (
    payment_cancel,
    payment_capture,
    payment_captured_by,
    payment_refund,
    refunds_execute,
    refunds_reserve,
)
from payments.services.operations import payment_changed

__all__ = [
    "STOREFRONT",
    "SYSTEM",
    "WEBHOOK",
    "Actor",
    "payment_cancel",
    "payment_capture",
    "payment_captured_by",
    "payment_changed",
    "payment_get",
    "payment_lock",
    "payment_refund",
    "payments_lock",
    "refunds_execute",
    "refunds_reserve",
]
