"""A small Stripe-compatible HTTP server for tests, on 127.0.0.1 at a random port.

It speaks the part of Stripe's v1 API the stripe provider uses: PaymentIntents (create,
retrieve, update, confirm, capture, cancel) and Refunds (create, retrieve), with Stripe's
form-encoded bodies (`metadata[cart_id]=…`; `expand[]` is accepted and ignored, since
everything is returned whole), its error bodies and statuses, and its idempotency: a repeated
Idempotency-Key with the same request replays the stored answer, with another request is
400 `idempotency_error`.

Tests steer it with `fail_next(operation, fault)`, play the customer with
`customer_confirms(intent_id)`, and read what took effect in `intents`, `refunds`,
`captures` and `cancels`; `requests` lists every authenticated request to a known endpoint.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.providers.fake_server import FakeHandler, LocalFake

API_KEY = "sk_test_fake_0123456789"
WEBHOOK_SECRET = "whsec_fake_0123456789"


class Fault(enum.StrEnum):
    DECLINE = "decline"  # 402 card_error; on confirm the intent also records the decline
    REQUIRES_ACTION = "requires_action"  # confirm only: the card asks for 3-D Secure
    SERVER_ERROR = "server_error"  # 500 api_error before anything happens (nothing stored)
    HANG = "hang"  # processed, then answered only after hang_seconds: the client times out
    DROP = "drop"  # processed, then the connection is closed without an answer


ID = r"(?P<id>[A-Za-z0-9_]+)"
ROUTES = [
    ("POST", re.compile(r"/v1/payment_intents"), "payment_intents.create"),
    ("GET", re.compile(rf"/v1/payment_intents/{ID}"), "payment_intents.retrieve"),
    ("POST", re.compile(rf"/v1/payment_intents/{ID}"), "payment_intents.update"),
    ("POST", re.compile(rf"/v1/payment_intents/{ID}/confirm"), "payment_intents.confirm"),
    ("POST", re.compile(rf"/v1/payment_intents/{ID}/capture"), "payment_intents.capture"),
    ("POST", re.compile(rf"/v1/payment_intents/{ID}/cancel"), "payment_intents.cancel"),
    ("POST", re.compile(r"/v1/refunds"), "refunds.create"),
    ("GET", re.compile(r"/v1/refunds"), "refunds.list"),
    ("GET", re.compile(rf"/v1/refunds/{ID}"), "refunds.retrieve"),
]
OPERATIONS = frozenset(operation for _, _, operation in ROUTES)

# The statuses in which Stripe lets an intent's amount or payment method change, or confirm.
OPEN = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
CANCELABLE = OPEN | {"requires_capture"}
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}


class StripeFailure(Exception):
    """An error answer, shaped as Stripe shapes them."""

    def __init__(self, status: int, type: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"type": type, "message": message, **fields}


def unexpected_state(message: str) -> StripeFailure:
    return StripeFailure(
        400, "invalid_request_error", message, code="payment_intent_unexpected_state"
    )


def decode_form(raw: str) -> dict[str, Any]:
    """Stripe's form encoding, `metadata[cart_id]=x` to {"metadata": {"cart_id": "x"}}.

    Lists (`expand[]=a`, `expand[0]=a`) come out as dicts keyed by position.
    """
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        path = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        target = params
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1] or str(len(target))] = value
    return params


def integer(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value is None:
        if default is None:
            raise StripeFailure(
                400,
                "invalid_request_error",
                f"Missing required param: {name}.",
                code="parameter_missing",
                param=name,
            )
        return default
    if not value.isdigit():
        raise StripeFailure(
            400,
            "invalid_request_error",
            f"Invalid integer: {value}",
            code="parameter_invalid_integer",
            param=name,
        )
    return int(value)


def check_three_decimal(amount: int, currency: str, param: str) -> None:
    if currency in THREE_DECIMAL and amount % 10:
        raise StripeFailure(
            400,
            "invalid_request_error",
            f"Amounts in {currency} must end in 0 (got {amount}).",
            code="invalid_charge_amount",
            param=param,
        )


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The operation a request asks for, and the ids in its path."""
    for route_method, pattern, operation in ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return operation, match.groupdict()
    return None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # serialized when made, so a replay shows the object as it was then
    replayed: bool = False
    fault: Fault | None = None


@dataclass(frozen=True)
class Request:
    operation: str
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None


def answer(status: int, body: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(body).encode())


class FakeStripe(LocalFake):
    def __init__(self, *, api_key: str, hang_seconds: float = 5.0) -> None:
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.captures: list[dict[str, Any]] = []  # {"intent", "amount"}
        self.cancels: list[str] = []  # intent ids
        self.requests: list[Request] = []
        self.errors: list[str] = []  # the fake's own crashes, for the fixture to report
        self._refunded: defaultdict[str, int] = defaultdict(int)
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._idempotency: dict[str, tuple[tuple[Any, ...], Answer]] = {}
        # One Stripe: requests are processed one at a time, never the waiting of a HANG.
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._operations: dict[str, Callable[..., dict[str, Any]]] = {
            "payment_intents.create": self._create_intent,
            "payment_intents.retrieve": self._retrieve_intent,
            "payment_intents.update": self._update_intent,
            "payment_intents.confirm": self._confirm_intent,
            "payment_intents.capture": self._capture_intent,
            "payment_intents.cancel": self._cancel_intent,
            "refunds.create": self._create_refund,
            "refunds.retrieve": self._retrieve_refund,
            "refunds.list": self._list_refunds,
        }

    # What tests use --------------------------------------------------------------------

    def fail_next(self, operation: str, fault: Fault, *, times: int = 1) -> None:
        """The next `times` requests for `operation` (e.g. "payment_intents.capture") meet
        `fault`; later ones are served normally."""
        if operation not in OPERATIONS:
            raise ValueError(f"Unknown operation {operation!r}; one of {sorted(OPERATIONS)}.")
        if fault is Fault.REQUIRES_ACTION and operation != "payment_intents.confirm":
            raise ValueError("Only a confirmation can require an action.")
        self._faults[operation].extend([fault] * times)

    def customer_confirms(self, intent_id: str, payment_method: str = "pm_card_visa") -> Any:
        """What Stripe.js does in the customer's browser: confirm the intent with a card.

        Returns Stripe's JSON answer: the intent, or a 402 card error for a decline.
        """
        request = urllib.request.Request(
            f"{self.url}/v1/payment_intents/{intent_id}/confirm",
            data=urlencode({"payment_method": payment_method}).encode(),
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def operations(self, operation: str) -> list[Request]:
        return [request for request in self.requests if request.operation == operation]

    # Serving ---------------------------------------------------------------------------

    def serve(self, handler: FakeHandler) -> None:
        try:
            result = self._answer(handler)
        except Exception:
            self.errors.append(traceback.format_exc())
            result = answer(500, {"error": {"type": "api_error", "message": "The fake failed."}})
        if result.fault is Fault.DROP:
            handler.close_connection = True
            return
        if result.fault is Fault.HANG:
            self._released.wait(self.hang_seconds)
            handler.close_connection = True
        try:
            handler.send_response(result.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(result.body)))
            handler.send_header("Request-Id", new_id("req"))
            if result.replayed:
                handler.send_header("Idempotent-Replayed", "true")
            handler.end_headers()
            handler.wfile.write(result.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a HANG

    def _answer(self, handler: FakeHandler) -> Answer:
        method = handler.command
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else url.query
        routed = route(method, url.path)
        if routed is None:
            return answer(404, self._error("invalid_request_error", "Unrecognized request URL."))
        operation, args = routed
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return answer(401, self._error("invalid_request_error", "Invalid API Key provided."))
        key = handler.headers.get("Idempotency-Key") if method == "POST" else None
        params = decode_form(raw)
        with self._lock:
            faults = self._faults[operation]
            fault = faults.popleft() if faults else None
            self.requests.append(Request(operation, method, url.path, params, key))
            if fault is Fault.SERVER_ERROR:
                # Stripe stores no answer for a request that failed before it was executed.
                return answer(500, self._error("api_error", "An unknown error occurred."))
            fingerprint = (method, url.path, tuple(sorted(parse_qsl(raw))))
            if key in self._idempotency:
                stored_fingerprint, stored = self._idempotency[key]
                if stored_fingerprint == fingerprint:
                    result = replace(stored, replayed=True)
                else:
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters"
                        " they were first used with."
                    )
                    result = answer(400, self._error("idempotency_error", message))
            else:
                result = self._execute(operation, params, fault, args)
                if key:
                    self._idempotency[key] = (fingerprint, result)
        return replace(result, fault=fault)

    def _execute(
        self, operation: str, params: dict[str, Any], fault: Fault | None, args: dict[str, str]
    ) -> Answer:
        try:
            if fault is Fault.DECLINE and operation != "payment_intents.confirm":
                raise StripeFailure(402, **DECLINE)
            return answer(200, self._operations[operation](params, fault, **args))
        except StripeFailure as failure:
            return answer(failure.status, {"error": failure.error})

    @staticmethod
    def _error(type: str, message: str) -> dict[str, Any]:
        return {"error": {"type": type, "message": message}}

    # PaymentIntents --------------------------------------------------------------------

    def _intent(self, intent_id: str) -> dict[str, Any]:
        try:
            return self.intents[intent_id]
        except KeyError:
            raise StripeFailure(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            ) from None

    def _create_intent(self, params: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        amount = integer(params, "amount")
        currency = params.get("currency", "")
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise StripeFailure(400, "invalid_request_error", "Invalid currency.", param="currency")
        if amount < 1:
            raise StripeFailure(
                400,
                "invalid_request_error",
                "Amount must be at least 1.",
                code="amount_too_small",
                param="amount",
            )
        check_three_decimal(amount, currency, "amount")
        intent_id = new_id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": currency,
            "capture_method": params.get("capture_method", "automatic_async"),
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "status": "requires_payment_method",
            "metadata": dict(params.get("metadata", {})),
            "payment_method": None,
            "last_payment_error": None,
            "next_action": None,
            "latest_charge": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "created": int(time.time()),
            "livemode": False,
        }
        self.intents[intent_id] = intent
        return intent

    def _retrieve_intent(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        return self._intent(id)

    def _update_intent(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        intent = self._intent(id)
        if ("amount" in params or "payment_method" in params) and intent["status"] not in OPEN:
            raise unexpected_state(
                f"This PaymentIntent could not be updated because it has a status of"
                f" {intent['status']}. You may only update the amount or payment method of a"
                f" PaymentIntent with one of the following statuses: {', '.join(sorted(OPEN))}."
            )
        if "amount" in params:
            intent["amount"] = integer(params, "amount")
            check_three_decimal(intent["amount"], intent["currency"], "amount")
        if "payment_method" in params:
            intent["payment_method"] = params["payment_method"]
            intent["status"] = "requires_confirmation"
        intent["metadata"].update(params.get("metadata", {}))
        return intent

    def _confirm_intent(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        intent = self._intent(id)
        if intent["status"] not in OPEN:
            raise unexpected_state(
                "You cannot confirm this PaymentIntent because it has a status of"
                f" {intent['status']}."
            )
        payment_method = params.get("payment_method") or intent["payment_method"]
        if not payment_method:
            raise unexpected_state(
                "You cannot confirm this PaymentIntent because it's missing a payment method."
            )
        if fault is Fault.DECLINE:
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                next_action=None,
                last_payment_error={**DECLINE, "payment_method": {"id": payment_method}},
            )
            raise StripeFailure(402, **DECLINE, payment_intent=intent)
        intent["payment_method"] = payment_method
        if fault is Fault.REQUIRES_ACTION:
            intent.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
            return intent
        intent.update(last_payment_error=None, next_action=None, latest_charge=new_id("ch"))
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
        return intent

    def _capture_intent(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        intent = self._intent(id)
        if intent["status"] != "requires_capture":
            raise unexpected_state(
                "This PaymentIntent could not be captured because it has a status of"
                f" {intent['status']}."
            )
        amount = integer(params, "amount_to_capture", default=intent["amount_capturable"])
        if not 0 < amount <= intent["amount_capturable"]:
            raise StripeFailure(
                400,
                "invalid_request_error",
                f"The amount to capture ({amount}) must be between 1 and the capturable amount"
                f" ({intent['amount_capturable']}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        check_three_decimal(amount, intent["currency"], "amount_to_capture")
        # What is not captured is released, as Stripe does.
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.captures.append({"intent": id, "amount": amount})
        return intent

    def _cancel_intent(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        intent = self._intent(id)
        if intent["status"] not in CANCELABLE:
            raise unexpected_state(
                "You cannot cancel this PaymentIntent because it has a status of"
                f" {intent['status']}."
            )
        intent.update(
            status="canceled",
            amount_capturable=0,
            canceled_at=int(time.time()),
            cancellation_reason=params.get("cancellation_reason"),
        )
        self.cancels.append(id)
        return intent

    # Refunds ---------------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise StripeFailure(
                400,
                "invalid_request_error",
                "Missing required param: payment_intent.",
                code="parameter_missing",
                param="payment_intent",
            )
        intent = self._intent(intent_id)
        if intent["status"] != "succeeded":
            raise unexpected_state("This PaymentIntent has no captured charge to refund.")
        remaining = intent["amount_received"] - self._refunded[intent_id]
        if not remaining:
            raise StripeFailure(
                400,
                "invalid_request_error",
                f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = integer(params, "amount", default=remaining)
        if not 0 < amount <= remaining:
            raise StripeFailure(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge"
                f" ({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        check_three_decimal(amount, intent["currency"], "amount")
        reason = params.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise StripeFailure(
                400, "invalid_request_error", f"Invalid reason: {reason}", param="reason"
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "reason": reason,
            "metadata": dict(params.get("metadata", {})),
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        self._refunded[intent_id] += amount
        return refund

    def _list_refunds(self, params: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        """Refunds of one intent, newest first, as Stripe lists them."""
        intent_id = params.get("payment_intent")
        found = [r for r in self.refunds.values() if r["payment_intent"] == intent_id]
        found.sort(key=lambda r: r["created"], reverse=True)
        return {"object": "list", "data": found, "has_more": False, "url": "/v1/refunds"}

    def refund_outside(self, intent_id: str, amount: int) -> dict[str, Any]:
        """A refund made in Stripe's own dashboard: our application never asked for it."""
        with self._lock:
            return self._create_refund({"payment_intent": intent_id, "amount": str(amount)}, None)

    def _retrieve_refund(
        self, params: dict[str, Any], fault: Fault | None, id: str
    ) -> dict[str, Any]:
        try:
            return self.refunds[id]
        except KeyError:
            raise StripeFailure(
                404,
                "invalid_request_error",
                f"No such refund: '{id}'",
                code="resource_missing",
                param="id",
            ) from None
