"""A small Klarna-compatible HTTP server for tests, on 127.0.0.1 at a random port.

It speaks the part of Klarna's published API the klarna provider uses, with HTTP Basic:

- Klarna Payments: `POST /payments/v1/sessions` (create), `GET|POST
  /payments/v1/sessions/{id}` (read, update: 204), `POST
  /payments/v1/authorizations/{token}/order` (the order from the widget's authorization),
  `DELETE /payments/v1/authorizations/{token}` (release it);
- Order Management: `GET /ordermanagement/v1/orders/{id}`, and `POST .../captures`,
  `.../refunds` (201, empty body, `Capture-Id` / `Refund-Id` and `Location` headers),
  `.../cancel`, `.../release-remaining-authorization` (204).

Its rules are Klarna's: order lines must add up to `order_amount` and the currency must be
the purchase country's (400 BAD_VALUE); an order must carry the purchase data the widget
authorized (409 BAD_VALUE "Not matching fields"); a token is used once and expires (404
NOT_FOUND "Invalid authorization token"); a purchase Klarna turns down is 403 REJECTED; a
capture of an order in fraud review or over the remaining authorization is 403
CAPTURE_NOT_ALLOWED, a cancel after a capture 403 CANCEL_NOT_ALLOWED. Errors are
`{"error_code", "error_messages", "correlation_id"}`. A POST repeated with the same
Klarna-Idempotency-Key replays the first answer (within Klarna's 24 hours: always, here)
and does nothing again. Klarna documents the key for Order Management; the fake honours it
on every POST, create-order included.

Control endpoints under `/_control/` (no credentials; what a browser and Klarna's back
office would do) play the widget (`customer_authorizes`, `customer_refuses`), decide a fraud
review later (`fraud_decides`, which returns the notification Klarna would post), expire a
token, and inject faults (`fail_next`: a 500 before anything happens, the answer dropped
after the work is done, or the answer delayed). Tests read what took effect in `sessions`,
`orders`, `captures`, `refunds`, `cancels`, `releases`; `requests` lists every
authenticated request to a known endpoint.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import secrets
import threading
import traceback
import urllib.error
import urllib.request
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tests.providers.fake_server import FakeHandler, LocalFake

USERNAME = "PK_fake_0123"
PASSWORD = "klarna_test_password"

# The purchase countries the fake sells in, with the one currency each is paid in.
MARKETS = {"SE": "SEK", "DE": "EUR", "NL": "EUR", "GB": "GBP", "US": "USD", "NO": "NOK"}
AUTHORIZATION_DAYS = 28


class Fault(enum.StrEnum):
    SERVER_ERROR = "server_error"  # 500 before anything happens (nothing stored)
    DROP = "drop"  # processed, then the connection is closed without an answer
    DELAY = "delay"  # processed, then answered after `seconds`: a client may time out


ID = r"(?P<id>[A-Za-z0-9_-]+)"
ROUTES = [
    ("POST", re.compile(r"/payments/v1/sessions"), "sessions.create"),
    ("GET", re.compile(rf"/payments/v1/sessions/{ID}"), "sessions.read"),
    ("POST", re.compile(rf"/payments/v1/sessions/{ID}"), "sessions.update"),
    ("POST", re.compile(rf"/payments/v1/authorizations/{ID}/order"), "orders.create"),
    ("DELETE", re.compile(rf"/payments/v1/authorizations/{ID}"), "authorizations.cancel"),
    ("GET", re.compile(rf"/ordermanagement/v1/orders/{ID}"), "orders.read"),
    ("POST", re.compile(rf"/ordermanagement/v1/orders/{ID}/captures"), "orders.capture"),
    ("POST", re.compile(rf"/ordermanagement/v1/orders/{ID}/refunds"), "orders.refund"),
    ("POST", re.compile(rf"/ordermanagement/v1/orders/{ID}/cancel"), "orders.cancel"),
    (
        "POST",
        re.compile(rf"/ordermanagement/v1/orders/{ID}/release-remaining-authorization"),
        "orders.release",
    ),
]
OPERATIONS = frozenset(operation for _, _, operation in ROUTES)
CONTROL = [
    (re.compile(rf"/_control/sessions/{ID}/authorize"), "authorize"),
    (re.compile(rf"/_control/orders/{ID}/fraud"), "fraud"),
    (re.compile(rf"/_control/authorizations/{ID}/expire"), "expire"),
    (re.compile(r"/_control/faults"), "faults"),
]


class KlarnaFailure(Exception):
    """An error answer, shaped as Klarna shapes them."""

    def __init__(self, status: int, code: str, *messages: str) -> None:
        super().__init__(code)
        self.status = status
        self.body = {
            "error_code": code,
            "error_messages": list(messages),
            "correlation_id": str(uuid.uuid4()),
        }


def bad_value(name: str) -> KlarnaFailure:
    return KlarnaFailure(400, "BAD_VALUE", f"Bad value: {name}")


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    fault: Fault | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    operation: str
    method: str
    path: str
    body: dict[str, Any]
    idempotency_key: str | None


@dataclass
class Authorization:
    """What the widget authorized: the session's purchase data at that moment."""

    token: str
    session_id: str
    purchase: dict[str, Any]
    fraud_status: str
    reject: bool = False
    expired: bool = False
    used: bool = False
    canceled: bool = False


def answer(status: int, body: dict[str, Any] | None = None, **headers: str) -> Answer:
    payload = json.dumps(body).encode() if body is not None else b""
    names = tuple((name.replace("_", "-"), value) for name, value in headers.items())
    return Answer(status, payload, names)


def integer(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_value(name)
    return value


def purchase_of(body: dict[str, Any]) -> dict[str, Any]:
    """Klarna's checks of a purchase: known market, lines that add up."""
    country, currency = body.get("purchase_country"), body.get("purchase_currency")
    if country not in MARKETS:
        raise bad_value("purchase_country")
    if currency != MARKETS[country]:
        raise bad_value("purchase_currency")
    if not isinstance(body.get("locale"), str):
        raise bad_value("locale")
    amount = integer(body, "order_amount")
    tax = integer(body, "order_tax_amount")
    lines = body.get("order_lines")
    if amount < 0:
        raise bad_value("order_amount")
    if not isinstance(lines, list) or not lines:
        raise bad_value("order_lines")
    for n, line in enumerate(lines):
        if not isinstance(line, dict) or not isinstance(line.get("name"), str):
            raise bad_value(f"order_lines[{n}].name")
        quantity = integer(line, "quantity")
        unit_price = integer(line, "unit_price")
        discount = integer(line, "total_discount_amount", default=0)
        if quantity < 0:
            raise bad_value(f"order_lines[{n}].quantity")
        if integer(line, "total_amount") != quantity * unit_price - discount:
            raise bad_value(f"order_lines[{n}].total_amount")
    if sum(line["total_amount"] for line in lines) != amount:
        raise bad_value("order_amount")
    if sum(integer(line, "total_tax_amount", default=0) for line in lines) != tax:
        raise bad_value("order_tax_amount")
    return {
        "purchase_country": country,
        "purchase_currency": currency,
        "locale": body["locale"],
        "order_amount": amount,
        "order_tax_amount": tax,
        "order_lines": lines,
        "merchant_reference1": body.get("merchant_reference1"),
        "merchant_reference2": body.get("merchant_reference2"),
    }


# What an order must match of the authorization the widget gave (Klarna's "Not matching
# fields" check).
MATCHED = ("purchase_country", "purchase_currency", "order_amount", "order_lines")


class FakeKlarna(LocalFake):
    def __init__(self, *, username: str = USERNAME, password: str = PASSWORD) -> None:
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorization = f"Basic {credentials}"
        self.sessions: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.captures: list[dict[str, Any]] = []  # {"order_id", "capture_id", "amount"}
        self.refunds: list[dict[str, Any]] = []  # {"order_id", "refund_id", "amount"}
        self.cancels: list[str] = []  # order ids
        self.releases: list[str] = []  # order ids whose remaining authorization was released
        self.requests: list[Request] = []
        self.errors: list[str] = []  # the fake's own crashes, for the fixture to report
        self._authorizations: dict[str, Authorization] = {}
        self._faults: defaultdict[str, deque[tuple[Fault, float]]] = defaultdict(deque)
        self._idempotency: dict[str, Answer] = {}
        # One Klarna: requests are processed one at a time, never the waiting of a DELAY.
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._operations: dict[str, Callable[..., Answer]] = {
            "sessions.create": self._create_session,
            "sessions.read": self._read_session,
            "sessions.update": self._update_session,
            "orders.create": self._create_order,
            "authorizations.cancel": self._cancel_authorization,
            "orders.read": self._read_order,
            "orders.capture": self._capture,
            "orders.refund": self._refund,
            "orders.cancel": self._cancel,
            "orders.release": self._release,
        }

    # What tests use: the control endpoints, over HTTP --------------------------------

    def customer_authorizes(self, session_id: str, *, fraud_status: str = "ACCEPTED") -> str:
        """The customer completes Klarna's widget: its `authorization_token`. The order made
        from it is in fraud review when `fraud_status` is PENDING."""
        answer = self._control(
            f"/_control/sessions/{session_id}/authorize",
            {"approve": True, "fraud_status": fraud_status},
        )
        assert answer["approved"], answer
        return str(answer["authorization_token"])

    def customer_refuses(self, session_id: str, *, at: str = "widget") -> dict[str, Any]:
        """Klarna turns the customer down: in the widget (no token, `approved: false`), or
        `at="order"`: the widget hands out a token and creating the order is 403 REJECTED."""
        return self._control(
            f"/_control/sessions/{session_id}/authorize",
            {"approve": at != "widget", "reject_on_order": at == "order"},
        )

    def fraud_decides(self, order_id: str, decision: str) -> dict[str, Any]:
        """Klarna's fraud review ends (ACCEPTED or REJECTED): the notification it posts."""
        return self._control(f"/_control/orders/{order_id}/fraud", {"decision": decision})

    def expire(self, token: str) -> None:
        """An authorization token older than Klarna's 60 minutes."""
        self._control(f"/_control/authorizations/{token}/expire", {})

    def fail_next(
        self, operation: str, fault: Fault, *, times: int = 1, seconds: float = 5.0
    ) -> None:
        """The next `times` requests for `operation` (e.g. "orders.capture") meet `fault`
        (`seconds`: how long a DELAY waits); later ones are served normally."""
        self._control(
            "/_control/faults",
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
            raise AssertionError(f"{path}: {error.code} {error.read().decode()}") from None

    # Serving ---------------------------------------------------------------------------

    def serve(self, handler: FakeHandler) -> None:
        try:
            result = self._answer(handler)
        except Exception:
            self.errors.append(traceback.format_exc())
            result = answer(500, KlarnaFailure(500, "INTERNAL_SERVER_ERROR", "fake").body)
        if result.fault is Fault.DROP:
            handler.close_connection = True
            return
        if result.fault is Fault.DELAY:
            self._released.wait(result.delay)
        try:
            handler.send_response(result.status)
            handler.send_header("Content-Length", str(len(result.body)))
            if result.body:
                handler.send_header("Content-Type", "application/json")
            for name, value in result.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(result.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting

    def _answer(self, handler: FakeHandler) -> Answer:
        method = handler.command
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        for pattern, control in CONTROL:
            match = pattern.fullmatch(path)
            if match and method == "POST":
                with self._lock:
                    return self._control_answer(control, json.loads(raw or b"{}"), match)
        routed = self._route(method, path)
        if routed is None:
            return answer(404, KlarnaFailure(404, "NOT_FOUND", "Not found").body)
        operation, args = routed
        if handler.headers.get("Authorization") != self.authorization:
            return answer(401, KlarnaFailure(401, "UNAUTHORIZED", "Unauthorized").body)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return answer(400, KlarnaFailure(400, "BAD_REQUEST", "Malformed JSON").body)
        if not isinstance(body, dict):
            return answer(400, KlarnaFailure(400, "BAD_REQUEST", "Not an object").body)
        key = handler.headers.get("Klarna-Idempotency-Key") if method == "POST" else None
        with self._lock:
            faults = self._faults[operation]
            fault, delay = faults.popleft() if faults else (None, 0.0)
            self.requests.append(Request(operation, method, path, body, key))
            if fault is Fault.SERVER_ERROR:
                # Nothing happened and nothing is stored: a retry under the key runs it.
                failure = KlarnaFailure(500, "INTERNAL_SERVER_ERROR", "Unexpected server error")
                return answer(500, failure.body)
            if key is not None and key in self._idempotency:
                result = self._idempotency[key]
            else:
                try:
                    result = self._operations[operation](body, **args)
                except KlarnaFailure as failure:
                    result = answer(failure.status, failure.body)
                if key is not None:
                    self._idempotency[key] = result
        return replace(result, fault=fault, delay=delay)

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for route_method, pattern, operation in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return operation, match.groupdict()
        return None

    # Control ---------------------------------------------------------------------------

    def _control_answer(self, control: str, body: dict[str, Any], match: re.Match[str]) -> Answer:
        if control == "faults":
            operation = body["operation"]
            if operation not in OPERATIONS:
                raise ValueError(f"Unknown operation {operation!r}; one of {sorted(OPERATIONS)}.")
            fault = (Fault(body["fault"]), float(body.get("seconds", 5.0)))
            self._faults[operation].extend([fault] * int(body.get("times", 1)))
            return answer(200, {"ok": True})
        if control == "expire":
            self._authorizations[match["id"]].expired = True
            return answer(200, {"ok": True})
        if control == "fraud":
            return answer(200, self._decide_fraud(match["id"], body["decision"]))
        session = self.sessions[match["id"]]
        if not body.get("approve"):
            return answer(200, {"approved": False, "show_form": False})
        token = new_id()
        self._authorizations[token] = Authorization(
            token=token,
            session_id=session["session_id"],
            purchase={name: session[name] for name in MATCHED},
            fraud_status=body.get("fraud_status", "ACCEPTED"),
            reject=bool(body.get("reject_on_order")),
        )
        return answer(200, {"approved": True, "authorization_token": token})

    def _decide_fraud(self, order_id: str, decision: str) -> dict[str, Any]:
        order = self.orders[order_id]
        assert order["fraud_status"] == "PENDING", order["fraud_status"]
        assert decision in ("ACCEPTED", "REJECTED"), decision
        order["fraud_status"] = decision
        if decision == "REJECTED":
            # Klarna cancels a rejected order: nothing stays authorized.
            order.update(status="CANCELLED", remaining_authorized_amount=0)
        return {"order_id": order_id, "event_type": f"FRAUD_RISK_{decision}"}

    # Klarna Payments -------------------------------------------------------------------

    def _session(self, session_id: str) -> dict[str, Any]:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise KlarnaFailure(404, "NOT_FOUND", "Session not found") from None

    def _create_session(self, body: dict[str, Any]) -> Answer:
        purchase = purchase_of(body)
        session_id = new_id()
        header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').decode().rstrip("=")
        session = {
            "session_id": session_id,
            "client_token": f"{header}.{secrets.token_urlsafe(24)}.{secrets.token_urlsafe(16)}",
            "status": "incomplete",
            "expires_at": (datetime.now(UTC) + timedelta(hours=48)).isoformat(),
            **purchase,
        }
        self.sessions[session_id] = session
        return answer(
            200,
            {
                "session_id": session_id,
                "client_token": session["client_token"],
                "payment_method_categories": [
                    {
                        "identifier": "klarna",
                        "name": "Pay with Klarna",
                        "asset_urls": {
                            "descriptive": "https://x.klarnacdn.net/payment-method/assets/badges/generic/klarna.svg",
                            "standard": "https://x.klarnacdn.net/payment-method/assets/badges/generic/klarna.svg",
                        },
                    }
                ],
            },
        )

    def _read_session(self, body: dict[str, Any], id: str) -> Answer:
        return answer(200, self._session(id))

    def _update_session(self, body: dict[str, Any], id: str) -> Answer:
        session = self._session(id)
        session.update(purchase_of(body))
        return answer(204)

    def _create_order(self, body: dict[str, Any], id: str) -> Answer:
        authorization = self._authorizations.get(id)
        if (
            authorization is None
            or authorization.expired
            or authorization.used
            or (authorization.canceled)
        ):
            raise KlarnaFailure(404, "NOT_FOUND", "Invalid authorization token")
        purchase = purchase_of(body)
        mismatched = [name for name in MATCHED if purchase[name] != authorization.purchase[name]]
        if mismatched:
            raise KlarnaFailure(409, "BAD_VALUE", f"Not matching fields: {mismatched}")
        if authorization.reject:
            authorization.used = True
            raise KlarnaFailure(403, "REJECTED", "Rejected")
        authorization.used = True
        self.sessions[authorization.session_id]["status"] = "complete"
        order_id = new_id()
        amount = purchase["order_amount"]
        self.orders[order_id] = {
            "order_id": order_id,
            "status": "AUTHORIZED",
            "fraud_status": authorization.fraud_status,
            "order_amount": amount,
            "original_order_amount": amount,
            "captured_amount": 0,
            "refunded_amount": 0,
            "remaining_authorized_amount": amount,
            "created_at": now(),
            "expires_at": (datetime.now(UTC) + timedelta(days=AUTHORIZATION_DAYS)).isoformat(),
            "captures": [],
            "refunds": [],
            **purchase,
        }
        return answer(
            200,
            {
                "order_id": order_id,
                "redirect_url": f"{self.url}/redirect/{order_id}",
                "fraud_status": authorization.fraud_status,
                "authorized_payment_method": {"type": "invoice", "number_of_days": 30},
            },
        )

    def _cancel_authorization(self, body: dict[str, Any], id: str) -> Answer:
        authorization = self._authorizations.get(id)
        if authorization is None or authorization.used or authorization.canceled:
            raise KlarnaFailure(404, "NOT_FOUND", "Invalid authorization token")
        authorization.canceled = True
        return answer(204)

    # Order Management ------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any]:
        try:
            return self.orders[order_id]
        except KeyError:
            raise KlarnaFailure(404, "NO_SUCH_ORDER", f"Order {order_id} not found") from None

    def _read_order(self, body: dict[str, Any], id: str) -> Answer:
        return answer(200, self._order(id))

    def _capture(self, body: dict[str, Any], id: str) -> Answer:
        order = self._order(id)
        amount = integer(body, "captured_amount")
        if (
            order["status"] not in ("AUTHORIZED", "PART_CAPTURED")
            or order["fraud_status"] != "ACCEPTED"
            or not 0 < amount <= order["remaining_authorized_amount"]
        ):
            raise KlarnaFailure(403, "CAPTURE_NOT_ALLOWED", "Capture not allowed")
        capture_id = new_id()
        order["captures"].append(
            {
                "capture_id": capture_id,
                "captured_amount": amount,
                "captured_at": now(),
                "reference": body.get("reference", ""),
                "refunded_amount": 0,
            }
        )
        order["captured_amount"] += amount
        order["remaining_authorized_amount"] -= amount
        order["status"] = (
            "CAPTURED" if not order["remaining_authorized_amount"] else "PART_CAPTURED"
        )
        self.captures.append({"order_id": id, "capture_id": capture_id, "amount": amount})
        return answer(
            201,
            Location=f"{self.url}/ordermanagement/v1/orders/{id}/captures/{capture_id}",
            Capture_Id=capture_id,
        )

    def _refund(self, body: dict[str, Any], id: str) -> Answer:
        order = self._order(id)
        amount = integer(body, "refunded_amount")
        if not 0 < amount <= order["captured_amount"] - order["refunded_amount"]:
            raise KlarnaFailure(403, "REFUND_NOT_ALLOWED", "Refund not allowed")
        refund_id = new_id()
        order["refunds"].append(
            {
                "refund_id": refund_id,
                "refunded_amount": amount,
                "refunded_at": now(),
                "description": body.get("description", ""),
                "reference": body.get("reference", ""),
            }
        )
        order["refunded_amount"] += amount
        self.refunds.append({"order_id": id, "refund_id": refund_id, "amount": amount})
        return answer(
            201,
            Location=f"{self.url}/ordermanagement/v1/orders/{id}/refunds/{refund_id}",
            Refund_Id=refund_id,
        )

    def _cancel(self, body: dict[str, Any], id: str) -> Answer:
        order = self._order(id)
        if order["status"] != "AUTHORIZED":
            message = (
                "Order has previous captures. Cancel not possible"
                if order["captures"]
                else f"Order is {order['status']}"
            )
            raise KlarnaFailure(403, "CANCEL_NOT_ALLOWED", message)
        order.update(status="CANCELLED", remaining_authorized_amount=0)
        self.cancels.append(id)
        return answer(204)

    def _release(self, body: dict[str, Any], id: str) -> Answer:
        order = self._order(id)
        if order["status"] != "PART_CAPTURED":
            raise KlarnaFailure(
                403, "NOT_ALLOWED", "Release of remaining authorization not allowed"
            )
        order.update(status="CAPTURED", remaining_authorized_amount=0)
        self.releases.append(id)
        return answer(204)
