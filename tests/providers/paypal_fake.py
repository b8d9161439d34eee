"""A small PayPal-compatible HTTP server for tests, on 127.0.0.1 at a random port.

It speaks the part of PayPal's REST API the paypal provider uses, as PayPal publishes it:
OAuth2 client credentials (`POST /v1/oauth2/token`, tokens that expire), Orders v2 (create,
get, PATCH, authorize), Payments v2 (authorizations get/capture/void, captures get/refund,
refunds get) and `POST /v1/notifications/verify-webhook-signature`. Errors have PayPal's
shape (`name`, `message`, `debug_id`, `details[{issue, description}]`, `links`) and status
codes; every answer has a `PayPal-Debug-Id`. A POST repeated with the same PayPal-Request-Id
on the same path replays the first answer (PayPal's idempotency); one whose body differs is
replayed too, as PayPal does, but noted in `key_reuses` so a test can tell our keys apart.

Tests play the buyer and PayPal's back office through control endpoints under `/_fake/`
(over HTTP, as a browser or PayPal would): `buyer_approves` (with a funding source that
works or is declined), `settle` a pending capture or refund, `refund_outside` and `void_outside`
(PayPal's dashboard), `revoke_tokens`, and `fail_next` to inject a fault (500 before processing, the
answer dropped after processing, a delay). `GET /checkoutnow?token=…` is the approval page:
it approves and redirects to the order's return_url. What took effect is readable in
`orders`, `authorizations`, `captures` and `refunds`; `requests` lists every request to a
known endpoint.

Webhook signatures: PayPal signs `transmission_id|transmission_time|webhook_id|crc32(body)`
with its certificate; here `sign_event` makes the same headers with an HMAC the fake alone
knows, over the event's canonical JSON, and verify-webhook-signature checks them.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.providers.fake_server import FakeHandler, LocalFake

CLIENT_ID = "fake-paypal-client-id"
CLIENT_SECRET = "fake-paypal-client-secret"
WEBHOOK_ID = "WH-FAKE-0123456789"
_SIGNING_KEY = b"the fake's stand-in for PayPal's certificate"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-fake"

# PayPal's currency codes and the ones it takes without decimals.
CURRENCIES = frozenset(
    {
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS",
        "JPY", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD",
    }
)  # fmt: skip
NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
AWAITING_BUYER = frozenset({"CREATED", "PAYER_ACTION_REQUIRED"})


class Fault(enum.StrEnum):
    SERVER_ERROR = "server_error"  # 500 INTERNAL_SERVER_ERROR, before anything happens
    DROP = "drop"  # processed, then the connection closed without an answer
    DELAY = "delay"  # processed, answered after `seconds` (the client may give up first)
    PENDING = "pending"  # capture or refund: taken, answered PENDING, settled later


ID = r"(?P<id>[A-Za-z0-9-]+)"
ROUTES = [
    ("POST", re.compile(r"/v1/oauth2/token"), "oauth2.token"),
    ("POST", re.compile(r"/v2/checkout/orders"), "orders.create"),
    ("GET", re.compile(rf"/v2/checkout/orders/{ID}"), "orders.get"),
    ("PATCH", re.compile(rf"/v2/checkout/orders/{ID}"), "orders.patch"),
    ("POST", re.compile(rf"/v2/checkout/orders/{ID}/authorize"), "orders.authorize"),
    ("GET", re.compile(rf"/v2/payments/authorizations/{ID}"), "authorizations.get"),
    ("POST", re.compile(rf"/v2/payments/authorizations/{ID}/capture"), "authorizations.capture"),
    ("POST", re.compile(rf"/v2/payments/authorizations/{ID}/void"), "authorizations.void"),
    ("GET", re.compile(rf"/v2/payments/captures/{ID}"), "captures.get"),
    ("POST", re.compile(rf"/v2/payments/captures/{ID}/refund"), "captures.refund"),
    ("GET", re.compile(rf"/v2/payments/refunds/{ID}"), "refunds.get"),
    (
        "POST",
        re.compile(r"/v1/notifications/verify-webhook-signature"),
        "webhooks.verify",
    ),
]
OPERATIONS = frozenset(operation for _, _, operation in ROUTES)
UNPROCESSABLE = (
    "The requested action could not be performed, semantically incorrect, or failed business"
    " validation."
)


def new_id(length: int = 17) -> str:
    """PayPal's ids: upper-case letters and digits (`5O190127TN364715T`)."""
    alphabet = "ABCDEFGHJKLMNPRSTUVWXY0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def now_iso(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(event: Any) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def _signature(transmission_id: str, transmission_time: str, webhook_id: str, event: Any) -> str:
    crc = zlib.crc32(canonical(event))
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()
    return base64.b64encode(hmac.new(_SIGNING_KEY, message, hashlib.sha256).digest()).decode()


def sign_event(body: bytes, *, webhook_id: str = WEBHOOK_ID) -> dict[str, str]:
    """The headers PayPal sends with a delivery of `body` to the webhook `webhook_id`."""
    transmission_id, transmission_time = str(uuid.uuid4()), now_iso()
    return {
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "PAYPAL-CERT-URL": CERT_URL,
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-SIG": _signature(
            transmission_id, transmission_time, webhook_id, json.loads(body)
        ),
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
    }


def event_body(event_type: str, resource: dict[str, Any], *, event_id: str = "") -> bytes:
    """A webhook event as PayPal delivers it; the resource is what the event names."""
    resource_type = {
        "CHECKOUT.ORDER": "checkout-order",
        "PAYMENT.AUTHORIZATION": "authorization",
        "PAYMENT.CAPTURE": "capture",
    }[event_type.rsplit(".", 1)[0]]
    if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        resource_type = "refund"
    return json.dumps(
        {
            "id": event_id or f"WH-{new_id(8)}-{new_id(17)}",
            "event_version": "1.0",
            "create_time": now_iso(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"An event {event_type}",
            "resource": resource,
            "links": [],
        }
    ).encode()


class PayPalFailure(Exception):
    """An error answer, shaped as PayPal shapes them."""

    def __init__(self, status: int, name: str, message: str, issue: str = "", **extra: Any):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"name": name, "message": message}
        if issue:
            self.body["details"] = [{"issue": issue, "description": extra.pop("description", "")}]
            self.body["links"] = [
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ]
        self.body.update(extra)


def unprocessable(issue: str, description: str) -> PayPalFailure:
    return PayPalFailure(422, "UNPROCESSABLE_ENTITY", UNPROCESSABLE, issue, description=description)


def invalid_request(issue: str, description: str, field: str = "") -> PayPalFailure:
    failure = PayPalFailure(
        400,
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
        issue,
        description=description,
    )
    if field:
        failure.body["details"][0].update(field=field, location="body")
    return failure


def not_found(kind: str, object_id: str) -> PayPalFailure:
    return PayPalFailure(
        404,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        "INVALID_RESOURCE_ID",
        description=f"Specified resource ID does not exist: {kind} {object_id}.",
    )


def money(value: Any, field: str) -> dict[str, str]:
    """A money object checked as PayPal checks it; its value as given."""
    if not isinstance(value, dict):
        raise invalid_request("MISSING_REQUIRED_PARAMETER", "A required field is missing.", field)
    currency, amount = value.get("currency_code"), value.get("value")
    if currency not in CURRENCIES:
        raise unprocessable("CURRENCY_NOT_SUPPORTED", "Currency code is not supported.")
    if not isinstance(amount, str) or not re.fullmatch(r"\d{1,15}(\.\d+)?", amount):
        raise invalid_request("INVALID_PARAMETER_VALUE", "The value of a field is invalid.", field)
    if currency in NO_DECIMALS and "." in amount:
        raise unprocessable("DECIMALS_NOT_SUPPORTED", "Currency code does not support decimals.")
    if currency not in NO_DECIMALS and not re.fullmatch(r"\d+(\.\d{1,2})?", amount):
        raise unprocessable(
            "DECIMAL_PRECISION", "If the currency supports decimals, only two are supported."
        )
    if Decimal(amount) <= 0:
        raise unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", "Must be greater than zero.")
    return {"currency_code": currency, "value": amount}


def as_value(amount: Decimal, currency: str) -> str:
    return str(amount) if currency in NO_DECIMALS else f"{amount:.2f}"


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for route_method, pattern, operation in ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return operation, match.groupdict()
    return None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # serialized when made, so a replay shows the object as it was then
    fault: Fault | None = None
    delay: float = 0.0
    replayed: bool = False


@dataclass(frozen=True)
class Request:
    operation: str
    method: str
    path: str
    body: Any
    request_id: str | None


def answer(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode() if body is not None else b"")


class FakePayPal(LocalFake):
    def __init__(self, *, token_lifetime: int = 32400) -> None:
        self.token_lifetime = token_lifetime
        self.orders: dict[str, dict[str, Any]] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.tokens_issued = 0
        self.key_reuses: list[str] = []  # PayPal-Request-Ids sent again with another body
        self.errors: list[str] = []  # the fake's own crashes, for the fixture to report
        self._tokens: dict[str, float] = {}  # token -> when it expires (monotonic)
        self._refunded_capture: dict[str, str] = {}
        self._declining: set[str] = set()  # orders approved with a failing funding source
        self._faults: defaultdict[str, deque[tuple[Fault, float]]] = defaultdict(deque)
        self._replays: dict[tuple[str, str], tuple[Any, Answer]] = {}
        # One PayPal: requests are processed one at a time, never the waiting of a DELAY.
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._operations: dict[str, Callable[..., Any]] = {
            "orders.create": self._create_order,
            "orders.get": lambda body, id: self._order(id),
            "orders.patch": self._patch_order,
            "orders.authorize": self._authorize_order,
            "authorizations.get": lambda body, id: self._authorization_view(id),
            "authorizations.capture": self._capture,
            "authorizations.void": self._void,
            "captures.get": lambda body, id: self._get("capture", self.captures, id),
            "captures.refund": self._refund,
            "refunds.get": lambda body, id: self._get("refund", self.refunds, id),
            "webhooks.verify": self._verify_webhook,
        }

    # What tests use (over HTTP, through the control endpoints) -------------------------

    def buyer_approves(self, order_id: str, *, funding: str = "ok") -> Any:
        """The buyer logs in on PayPal's page and approves, paying with a funding source
        that works (`ok`) or that the bank will decline at authorization (`declined`)."""
        return self._control(f"/_fake/orders/{order_id}/approve", {"funding": funding})

    def settle(self, object_id: str, status: str = "COMPLETED") -> Any:
        """PayPal settles a PENDING capture or refund: COMPLETED, or DECLINED / FAILED."""
        return self._control(f"/_fake/settle/{object_id}", {"status": status})

    def refund_outside(self, capture_id: str, value: str) -> Any:
        """A refund made in PayPal's dashboard: our application never asked for it."""
        return self._control(f"/_fake/captures/{capture_id}/refund", {"value": value})

    def void_outside(self, authorization_id: str) -> Any:
        """An authorization voided in PayPal's dashboard."""
        return self._control(f"/_fake/authorizations/{authorization_id}/void", {})

    def revoke_tokens(self) -> Any:
        return self._control("/_fake/tokens/revoke", {})

    def fail_next(
        self, operation: str, fault: Fault, *, times: int = 1, seconds: float = 5.0
    ) -> Any:
        """The next `times` requests for `operation` (e.g. "orders.authorize") meet `fault`."""
        return self._control(
            "/_fake/faults",
            {"operation": operation, "fault": fault.value, "times": times, "seconds": seconds},
        )

    def operations(self, operation: str) -> list[Request]:
        return [request for request in self.requests if request.operation == operation]

    def _control(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    # Serving ---------------------------------------------------------------------------

    def serve(self, handler: FakeHandler) -> None:
        try:
            result = self._answer(handler)
        except Exception:
            self.errors.append(traceback.format_exc())
            result = answer(500, self._error_body("INTERNAL_SERVER_ERROR", "The fake failed."))
        if result.fault is Fault.DROP:
            handler.close_connection = True
            return
        if result.delay:
            self._released.wait(result.delay)
        try:
            handler.send_response(result.status)
            handler.send_header("PayPal-Debug-Id", new_id(13).lower())
            if result.status == 302:
                handler.send_header("Location", json.loads(result.body)["location"])
            if result.body:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(result.body)))
            handler.end_headers()
            handler.wfile.write(result.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a DELAY

    def _answer(self, handler: FakeHandler) -> Answer:
        method, url = handler.command, urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if url.path.startswith("/_fake/") or url.path == "/checkoutnow":
            with self._lock:
                return self._control_answer(method, url.path, url.query, raw)
        routed = route(method, url.path)
        if routed is None:
            return answer(404, self._error_body("RESOURCE_NOT_FOUND", "No such endpoint."))
        operation, args = routed
        if operation == "oauth2.token":
            with self._lock:
                return self._token(handler.headers.get("Authorization", ""), raw)
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            if self._tokens.get(token, 0) < time.monotonic():
                # PayPal's answer to an expired or unknown token, before doing anything.
                return answer(
                    401, {"error": "invalid_token", "error_description": "Token is expired"}
                )
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return answer(400, invalid_request("MALFORMED_REQUEST_JSON", "Bad JSON.").body)
            request_id = handler.headers.get("PayPal-Request-Id") if method == "POST" else None
            self.requests.append(Request(operation, method, url.path, body, request_id))
            faults = self._faults[operation]
            fault, seconds = faults.popleft() if faults else (None, 0.0)
            if fault is Fault.SERVER_ERROR:
                # PayPal stores no answer for a request that failed before it was executed.
                return answer(500, self._error_body("INTERNAL_SERVER_ERROR", "Internal error."))
            representation = "return=representation" in handler.headers.get("Prefer", "")
            replay_key = (url.path, request_id) if request_id else None
            if replay_key in self._replays:
                first_body, stored = self._replays[replay_key]  # type: ignore[index]
                if first_body != body:
                    self.key_reuses.append(request_id or "")
                result = replace(stored, replayed=True)
            else:
                result = self._execute(operation, body, args, fault, representation)
                if replay_key is not None and result.status < 500:
                    self._replays[replay_key] = (body, result)
        return replace(result, fault=fault, delay=seconds if fault is Fault.DELAY else result.delay)

    def _execute(
        self,
        operation: str,
        body: Any,
        args: dict[str, str],
        fault: Fault | None,
        representation: bool,
    ) -> Answer:
        try:
            if operation in ("authorizations.capture", "captures.refund"):
                result = self._operations[operation](body, pending=fault is Fault.PENDING, **args)
            else:
                result = self._operations[operation](body, **args)
        except PayPalFailure as failure:
            failure.body["debug_id"] = new_id(13).lower()
            return answer(failure.status, failure.body)
        if operation == "orders.patch":
            return answer(204, None)
        if operation == "authorizations.void" and not representation:
            return answer(204, None)
        created = operation in ("orders.create", "orders.authorize") or operation.endswith(
            (".capture", ".refund")
        )
        if created and not representation:
            # Prefer: return=minimal (PayPal's default) answers the id, status and links.
            result = {key: result[key] for key in ("id", "status", "links") if key in result}
        return answer(201 if created else 200, result)

    def _error_body(self, name: str, message: str) -> dict[str, Any]:
        return {"name": name, "message": message, "debug_id": new_id(13).lower()}

    # OAuth2 ----------------------------------------------------------------------------

    def _token(self, authorization: str, raw: bytes) -> Answer:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {expected}":
            return answer(
                401,
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
            )
        if parse_qs(raw.decode()).get("grant_type") != ["client_credentials"]:
            return answer(
                400,
                {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
            )
        token = f"A21AA{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.monotonic() + self.token_lifetime
        self.tokens_issued += 1
        return answer(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": self.token_lifetime,
                "nonce": f"{now_iso()}{secrets.token_hex(8)}",
            },
        )

    # Orders ----------------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any]:
        try:
            return self.orders[order_id]
        except KeyError:
            raise not_found("order", order_id) from None

    def _order_links(self, order: dict[str, Any]) -> list[dict[str, str]]:
        base = f"{self.url}/v2/checkout/orders/{order['id']}"
        links = [{"href": base, "rel": "self", "method": "GET"}]
        if order["status"] in AWAITING_BUYER:
            rel = "payer-action" if order["status"] == "PAYER_ACTION_REQUIRED" else "approve"
            links.append(
                {"href": f"{self.url}/checkoutnow?token={order['id']}", "rel": rel, "method": "GET"}
            )
        if order["status"] in AWAITING_BUYER | {"APPROVED"}:
            links.append({"href": base, "rel": "update", "method": "PATCH"})
            links.append({"href": f"{base}/authorize", "rel": "authorize", "method": "POST"})
        return links

    def _touch(self, order: dict[str, Any]) -> dict[str, Any]:
        order["update_time"] = now_iso()
        order["links"] = self._order_links(order)
        return order

    def _create_order(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("intent") not in ("AUTHORIZE", "CAPTURE"):
            raise invalid_request("MISSING_REQUIRED_PARAMETER", "intent is required.", "/intent")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise invalid_request(
                "MISSING_REQUIRED_PARAMETER", "One purchase unit.", "/purchase_units"
            )
        unit = units[0]
        source = (body.get("payment_source") or {}).get("paypal")
        order = {
            "id": new_id(),
            "intent": body["intent"],
            "status": "PAYER_ACTION_REQUIRED" if source else "CREATED",
            "purchase_units": [
                {
                    "reference_id": str(unit.get("reference_id") or "default")[:256],
                    "custom_id": str(unit.get("custom_id", ""))[:127],
                    "amount": money(unit.get("amount"), "/purchase_units/0/amount"),
                    "payee": {"merchant_id": "FAKEMERCHANT01"},
                }
            ],
            "create_time": now_iso(),
        }
        if source:
            order["payment_source"] = {"paypal": source}
        self.orders[order["id"]] = order
        return self._touch(order)

    def _patch_order(self, body: Any, id: str) -> None:
        order = self._order(id)
        if order["status"] not in AWAITING_BUYER | {"APPROVED"}:
            raise unprocessable(
                "ORDER_COMPLETED_OR_VOIDED", "Order is voided or completed and cannot be patched."
            )
        if not isinstance(body, list) or not body:
            raise invalid_request("MALFORMED_REQUEST_JSON", "A JSON Patch array is required.")
        unit = order["purchase_units"][0]
        for patch in body:
            path = f"/purchase_units/@reference_id=='{unit['reference_id']}'/amount"
            if not isinstance(patch, dict) or patch.get("op") not in ("replace", "add"):
                raise unprocessable("INVALID_PATCH_OPERATION", "The operation is not supported.")
            if patch.get("path") != path:
                raise unprocessable("INVALID_JSON_POINTER_FORMAT", "The path is not supported.")
            amount = money(patch.get("value"), path)
            if amount["currency_code"] != unit["amount"]["currency_code"]:
                raise unprocessable("CURRENCY_MISMATCH", "Currency of the amount must not change.")
            unit["amount"] = amount
        self._touch(order)

    def _authorize_order(self, body: Any, id: str) -> dict[str, Any]:
        order = self._order(id)
        if order["intent"] != "AUTHORIZE":
            raise unprocessable(
                "ACTION_DOES_NOT_MATCH_INTENT", "The order's intent is not AUTHORIZE."
            )
        if order["status"] == "COMPLETED":
            raise unprocessable("ORDER_ALREADY_AUTHORIZED", "Order already authorized.")
        if order["status"] != "APPROVED":
            raise unprocessable(
                "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment."
            )
        if id in self._declining:
            # The funding source failed: the buyer has to approve again with another one.
            self._declining.discard(id)
            order["status"] = "PAYER_ACTION_REQUIRED" if "payment_source" in order else "CREATED"
            self._touch(order)
            raise unprocessable(
                "INSTRUMENT_DECLINED",
                "The instrument presented was either declined by the processor or bank, or it"
                " can't be used for this payment.",
            )
        unit = order["purchase_units"][0]
        authorization = {
            "id": new_id(),
            "status": "CREATED",
            "amount": dict(unit["amount"]),
            "custom_id": unit["custom_id"],
            "expiration_time": now_iso(timedelta(days=29)),
            "create_time": now_iso(),
            "update_time": now_iso(),
            "supplementary_data": {"related_ids": {"order_id": id}},
        }
        self.authorizations[authorization["id"]] = authorization
        unit["payments"] = {"authorizations": [authorization], "captures": [], "refunds": []}
        order["status"] = "COMPLETED"
        return self._touch(order)

    # Payments --------------------------------------------------------------------------

    def _get(self, kind: str, table: dict[str, dict[str, Any]], id: str) -> dict[str, Any]:
        try:
            return table[id]
        except KeyError:
            raise not_found(kind, id) from None

    def _authorization_view(self, id: str) -> dict[str, Any]:
        authorization = self._get("authorization", self.authorizations, id)
        base = f"{self.url}/v2/payments/authorizations/{id}"
        order_id = authorization["supplementary_data"]["related_ids"]["order_id"]
        authorization["links"] = [
            {"href": base, "rel": "self", "method": "GET"},
            {"href": f"{base}/capture", "rel": "capture", "method": "POST"},
            {"href": f"{base}/void", "rel": "void", "method": "POST"},
            {"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
        ]
        return authorization

    def _order_of(self, authorization: dict[str, Any]) -> dict[str, Any]:
        return self.orders[authorization["supplementary_data"]["related_ids"]["order_id"]]

    def _capture(self, body: Any, id: str, pending: bool = False) -> dict[str, Any]:
        authorization = self._authorization_view(id)
        status = authorization["status"]
        if status in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise unprocessable("AUTHORIZATION_ALREADY_CAPTURED", "Authorization was captured.")
        if status == "VOIDED":
            raise unprocessable(
                "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured."
            )
        body = body if isinstance(body, dict) else {}
        held = authorization["amount"]
        amount = money(body["amount"], "/amount") if "amount" in body else dict(held)
        if amount["currency_code"] != held["currency_code"]:
            raise unprocessable("CURRENCY_MISMATCH", "Currency must match the authorization's.")
        if Decimal(amount["value"]) > Decimal(held["value"]):
            raise unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds the allowable limit."
            )
        final = body.get("final_capture", False) is True
        capture_id = new_id()
        base = f"{self.url}/v2/payments/captures/{capture_id}"
        capture: dict[str, Any] = {
            "id": capture_id,
            "status": "PENDING" if pending else "COMPLETED",
            "amount": amount,
            "final_capture": final,
            "custom_id": authorization["custom_id"],
            "seller_protection": {"status": "ELIGIBLE"},
            "create_time": now_iso(),
            "update_time": now_iso(),
            "supplementary_data": {
                "related_ids": {
                    "order_id": authorization["supplementary_data"]["related_ids"]["order_id"],
                    "authorization_id": id,
                }
            },
            "links": [
                {"href": base, "rel": "self", "method": "GET"},
                {"href": f"{base}/refund", "rel": "refund", "method": "POST"},
                {
                    "href": f"{self.url}/v2/payments/authorizations/{id}",
                    "rel": "up",
                    "method": "GET",
                },
            ],
        }
        if pending:
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        authorization["status"] = "CAPTURED" if final else "PARTIALLY_CAPTURED"
        self.captures[capture_id] = capture
        self._order_of(authorization)["purchase_units"][0]["payments"]["captures"].append(capture)
        return capture

    def _void(self, body: Any, id: str) -> dict[str, Any]:
        authorization = self._authorization_view(id)
        if authorization["status"] == "VOIDED":
            raise unprocessable("PREVIOUSLY_VOIDED", "Authorization has been previously voided.")
        if authorization["status"] not in ("CREATED", "PENDING"):
            raise unprocessable(
                "CANNOT_BE_VOIDED", f"An authorization {authorization['status']} cannot be voided."
            )
        authorization.update(status="VOIDED", update_time=now_iso())
        return authorization

    def _refund(self, body: Any, id: str, pending: bool = False) -> dict[str, Any]:
        capture = self._get("capture", self.captures, id)
        currency = capture["amount"]["currency_code"]
        taken = sum(
            Decimal(r["amount"]["value"])
            for r in self.refunds.values()
            if self._refunded_capture[r["id"]] == id and r["status"] in ("COMPLETED", "PENDING")
        )
        remaining = Decimal(capture["amount"]["value"]) - taken
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED") or remaining <= 0:
            raise unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has been fully refunded.")
        body = body if isinstance(body, dict) else {}
        amount = (
            money(body["amount"], "/amount")
            if "amount" in body
            else {"currency_code": currency, "value": as_value(remaining, currency)}
        )
        if amount["currency_code"] != currency:
            raise unprocessable("CURRENCY_MISMATCH", "Currency must match the capture's.")
        if Decimal(amount["value"]) > remaining:
            raise unprocessable(
                "REFUND_AMOUNT_EXCEEDED", "The refund amount must be <= the capture amount."
            )
        refund_id = new_id()
        refund = {
            "id": refund_id,
            "status": "PENDING" if pending else "COMPLETED",
            "amount": amount,
            "custom_id": str(body.get("custom_id", ""))[:127],
            "create_time": now_iso(),
            "update_time": now_iso(),
            "links": [
                {"href": f"{self.url}/v2/payments/refunds/{refund_id}", "rel": "self"},
                {"href": f"{self.url}/v2/payments/captures/{id}", "rel": "up"},
            ],
        }
        self.refunds[refund_id] = refund
        self._refunded_capture[refund_id] = id  # PayPal shows it as the refund's `up` link
        capture["status"] = (
            "REFUNDED" if Decimal(amount["value"]) == remaining else "PARTIALLY_REFUNDED"
        )
        order_id = capture["supplementary_data"]["related_ids"]["order_id"]
        self.orders[order_id]["purchase_units"][0]["payments"]["refunds"].append(refund)
        return refund

    # Webhooks --------------------------------------------------------------------------

    def _verify_webhook(self, body: Any) -> dict[str, Any]:
        fields = ("auth_algo", "cert_url", "transmission_id", "transmission_sig")
        if not isinstance(body, dict) or any(not body.get(name) for name in fields):
            raise invalid_request("MISSING_REQUIRED_PARAMETER", "A required field is missing.")
        if not isinstance(body.get("webhook_event"), dict):
            raise invalid_request("MISSING_REQUIRED_PARAMETER", "webhook_event is required.")
        expected = _signature(
            body["transmission_id"],
            str(body.get("transmission_time", "")),
            str(body.get("webhook_id", "")),
            body["webhook_event"],
        )
        verified = (
            body.get("webhook_id") == WEBHOOK_ID
            and body["auth_algo"] == "SHA256withRSA"
            and body["cert_url"].startswith("https://api.paypal.com/")
            and hmac.compare_digest(expected, body["transmission_sig"])
        )
        return {"verification_status": "SUCCESS" if verified else "FAILURE"}

    # Control endpoints: the buyer, PayPal's back office, faults --------------------------

    def _control_answer(self, method: str, path: str, query: str, raw: bytes) -> Answer:
        body = json.loads(raw) if raw else {}
        try:
            if path == "/checkoutnow" and method == "GET":
                params = parse_qs(query)
                order = self._approve(params["token"][0], params.get("funding", ["ok"])[0])
                target = (order.get("payment_source") or {}).get("paypal", {})
                return_url = target.get("experience_context", {}).get("return_url")
                if return_url:
                    location = f"{return_url}?{urlencode({'token': order['id']})}"
                    return answer(302, {"location": location})
                return answer(200, {"id": order["id"], "status": order["status"]})
            if match := re.fullmatch(rf"/_fake/orders/{ID}/approve", path):
                return answer(200, self._approve(match["id"], body.get("funding", "ok")))
            if match := re.fullmatch(rf"/_fake/settle/{ID}", path):
                return answer(200, self._settle(match["id"], body["status"]))
            if match := re.fullmatch(rf"/_fake/captures/{ID}/refund", path):
                currency = self._get("capture", self.captures, match["id"])["amount"][
                    "currency_code"
                ]
                amount = {"currency_code": currency, "value": body["value"]}
                return answer(201, self._refund({"amount": amount}, match["id"]))
            if match := re.fullmatch(rf"/_fake/authorizations/{ID}/void", path):
                return answer(200, self._void({}, match["id"]))
            if path == "/_fake/tokens/revoke":
                self._tokens.clear()
                return answer(200, {"revoked": True})
            if path == "/_fake/faults":
                operation = body["operation"]
                if operation not in OPERATIONS:
                    raise ValueError(f"Unknown operation {operation!r}.")
                fault = Fault(body["fault"])
                self._faults[operation].extend(
                    [(fault, float(body.get("seconds", 5.0)))] * int(body.get("times", 1))
                )
                return answer(200, {"queued": len(self._faults[operation])})
        except PayPalFailure as failure:
            return answer(failure.status, failure.body)
        return answer(404, self._error_body("RESOURCE_NOT_FOUND", "No such control endpoint."))

    def _approve(self, order_id: str, funding: str) -> dict[str, Any]:
        order = self._order(order_id)
        if order["status"] not in AWAITING_BUYER | {"APPROVED"}:
            raise unprocessable("ORDER_COMPLETED_OR_VOIDED", "The order cannot be approved.")
        order["status"] = "APPROVED"
        order["payer"] = {"email_address": "buyer@example.com", "payer_id": new_id(13)}
        if funding == "declined":
            self._declining.add(order_id)
        else:
            self._declining.discard(order_id)
        return self._touch(order)

    def _settle(self, object_id: str, status: str) -> dict[str, Any]:
        if object_id in self.captures:
            obj = self.captures[object_id]
            if status != "COMPLETED":
                # A denied capture moves no money: the authorization holds again.
                authorization_id = obj["supplementary_data"]["related_ids"]["authorization_id"]
                self.authorizations[authorization_id]["status"] = "CREATED"
        else:
            obj = self._get("refund", self.refunds, object_id)
        if obj["status"] != "PENDING":
            raise unprocessable("NOT_PENDING", f"The object is {obj['status']}.")
        obj.update(status=status, update_time=now_iso())
        obj.pop("status_details", None)
        return obj
