"""What `make soak` verifies once the load has stopped, straight from the database: ours
(orders, payments, operations) against the `test` provider's remote ledger, which is what
a real provider would hold on its side and is written only by the provider's own calls.

Each check is a query listing the offending rows: empty passes. Every one of them can fail;
`bench/README.md` says how each was seen to.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import psycopg

from bench import server

# What must be true before the checks run: the workers, not the soak, finished the work no
# client will (SPEC 5.6, 5.7). Each is a count; the soak waits until all are 0, bounded.
DRAIN_QUERIES = {
    "operations requested or unknown": (
        "SELECT count(*) FROM payments_paymentoperation WHERE status IN ('requested', 'unknown')"
    ),
    # The soak's asynchronous operations settle 1 s after they are asked, and a re-read
    # every RECOVERY_INTERVAL_SECONDS settles them here: none may stay pending.
    "operations pending": (
        "SELECT count(*) FROM payments_paymentoperation WHERE status = 'pending'"
    ),
    # What checkout_complete_stalled looks for besides unresolved authorizations.
    "stalled checkouts (a live payment, no order, cart not completed)": (
        "SELECT count(*) FROM payments_payment p JOIN checkout_cart c ON c.id = p.cart_id"
        " WHERE p.canceled_at IS NULL AND p.order_id IS NULL AND p.swap_id IS NULL"
        " AND c.completed_at IS NULL"
    ),
    "remote authorizations with neither an order nor a cancel": None,  # from CHECK_QUERIES
    "idempotency keys still leased by a killed request": (
        "SELECT count(*) FROM payments_idempotencykey"
        " WHERE finished_at IS NULL AND locked_at IS NOT NULL"
        " AND locked_at > now() - make_interval(secs => %(lease)s)"
    ),
}

# A remote authorization is accounted for when its Payment has an order or was canceled
# here, or when it was voided at the provider (a released session) before any Payment.
UNACCOUNTED_AUTHORIZATIONS = (
    "SELECT a.reference, a.session_id FROM test_provider_ledgerentry a"
    " WHERE a.operation = 'authorize'"
    " AND NOT EXISTS (SELECT 1 FROM payments_payment p"
    "   WHERE p.data->>'authorization' = a.reference"
    "   AND (p.order_id IS NOT NULL OR p.canceled_at IS NOT NULL))"
    " AND NOT EXISTS (SELECT 1 FROM test_provider_ledgerentry c"
    "   WHERE c.operation = 'cancel' AND c.authorization = a.reference)"
)

# Per payment of the `test` provider: what the provider moved, by kind, for its authorization.
REMOTE_SUMS = """
    SELECT p.id, p.amount, p.amount_captured, p.amount_refunded, p.canceled_at IS NOT NULL,
        p.order_id IS NOT NULL,
        COALESCE(SUM(l.amount) FILTER (WHERE l.operation = 'capture'), 0),
        COALESCE(SUM(l.amount) FILTER (WHERE l.operation = 'refund'), 0),
        COUNT(l.id) FILTER (WHERE l.operation = 'cancel')
    FROM payments_payment p
    LEFT JOIN test_provider_ledgerentry l
        ON l.authorization = p.data->>'authorization' AND l.operation <> 'authorize'
    WHERE p.data ? 'authorization'
    GROUP BY p.id
"""

CHECK_QUERIES = {
    "zero carts with more than one order": (
        "SELECT cart_id, count(*) FROM checkout_order GROUP BY cart_id HAVING count(*) > 1"
    ),
    "zero carts with more than one live payment": (
        "SELECT cart_id, count(*) FROM payments_payment WHERE canceled_at IS NULL"
        " GROUP BY cart_id HAVING count(*) > 1"
    ),
    # Two authorizations for one cart, neither voided: the customer's money held twice.
    "zero carts with more than one live remote authorization": (
        "SELECT s.cart_id, count(*) FROM test_provider_ledgerentry a"
        " JOIN payments_paymentsession s ON s.id = a.session_id"
        " WHERE a.operation = 'authorize' AND NOT EXISTS (SELECT 1 FROM"
        "   test_provider_ledgerentry c WHERE c.operation = 'cancel'"
        "   AND c.authorization = a.reference)"
        " GROUP BY s.cart_id HAVING count(*) > 1"
    ),
    "zero sessions with more than one remote authorization": (
        "SELECT session_id, count(*) FROM test_provider_ledgerentry"
        " WHERE operation = 'authorize' GROUP BY session_id HAVING count(*) > 1"
    ),
    "every remote authorization has an order or a cancel": UNACCOUNTED_AUTHORIZATIONS,
    "every payment (any provider) has an order or is canceled": (
        "SELECT id, cart_id FROM payments_payment WHERE order_id IS NULL AND canceled_at IS NULL"
    ),
    # An order whose authorization the provider released holds no money: lost money.
    "no order whose uncaptured authorization was released at the provider": (
        "SELECT p.id, p.order_id FROM payments_payment p"
        " WHERE p.order_id IS NOT NULL AND p.canceled_at IS NULL AND p.amount_captured = 0"
        " AND EXISTS (SELECT 1 FROM test_provider_ledgerentry c WHERE c.operation = 'cancel'"
        "   AND c.authorization = p.data->>'authorization')"
    ),
    "no operation left requested or unknown": (
        "SELECT id, type, status, payment_id, session_id FROM payments_paymentoperation"
        " WHERE status IN ('requested', 'unknown')"
    ),
    "no operation left pending": (
        "SELECT id, type, payment_id FROM payments_paymentoperation WHERE status = 'pending'"
    ),
    # Our refunds against what our operations say succeeded (the two records of one thing).
    "every payment's amount_refunded is the sum of its succeeded refunds": (
        "SELECT p.id, p.amount_refunded, COALESCE(SUM(o.amount), 0) FROM payments_payment p"
        " LEFT JOIN payments_paymentoperation o ON o.payment_id = p.id"
        "   AND o.type = 'refund' AND o.status = 'succeeded'"
        " GROUP BY p.id HAVING p.amount_refunded <> COALESCE(SUM(o.amount), 0)"
    ),
}


def drain(dsn: str, *, lease_seconds: int, timeout: float) -> tuple[float, dict[str, int]]:
    """Wait, at most `timeout` s, until the workers finished what the load left behind.
    Returns the seconds waited and what was still left (all 0 when drained)."""
    began = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            left = {}
            for name, query in DRAIN_QUERIES.items():
                if query is None:
                    rows = conn.execute(UNACCOUNTED_AUTHORIZATIONS).fetchall()  # type: ignore[arg-type]
                    left[name] = len(rows)
                else:
                    row = conn.execute(query, {"lease": lease_seconds}).fetchone()  # type: ignore[arg-type]
                    left[name] = int(row[0]) if row else 0
            waited = time.monotonic() - began
            if not any(left.values()) or waited > timeout:
                return waited, left
            time.sleep(1)


def money_checks(dsn: str) -> list[dict[str, Any]]:
    """Zero doubled or lost money, per payment: what we record is what the provider moved."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(REMOTE_SUMS).fetchall()  # type: ignore[arg-type]
    captures = [(*r[:3], r[6]) for r in rows if r[2] != r[6]]
    refunds = [(r[0], r[3], r[7]) for r in rows if r[3] != r[7]]
    # A payment captured here whose authorization the provider also canceled, or the reverse.
    cancels = [(r[0], r[4], r[8]) for r in rows if r[8] and r[6] and not r[4]]
    return [
        check(
            "per payment: amount_captured == remote captures (test provider)",
            not captures,
            f"{len(captures)} (payment, amount, ours, remote): {captures[:5]}",
        ),
        check(
            "per payment: amount_refunded == remote refunds (test provider)",
            not refunds,
            f"{len(refunds)} (payment, ours, remote): {refunds[:5]}",
        ),
        check(
            "no payment both captured and canceled at the provider",
            not cancels,
            f"{len(cancels)}: {cancels[:5]}",
        ),
    ]


def expectation_checks(dsn: str, expected: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """What the operator asked for (and the provider did, if the answer was lost) is what
    the payment holds at the end: a lost answer left to the worker is not lost money."""
    if not expected:
        return [check("the operator's captures and refunds all took effect", None, skipped="none")]
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, amount_captured, amount_refunded FROM payments_payment WHERE id = ANY(%s)",
            (list(expected),),
        ).fetchall()
    actual = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    wrong = [(p, want, actual.get(p)) for p, want in expected.items() if actual.get(p) != want]
    return [
        check(
            "the operator's captures and refunds all took effect, once",
            not wrong,
            f"{len(wrong)} (payment, expected, actual): {wrong[:5]}",
        )
    ]


def database_checks(dsn: str) -> list[dict[str, Any]]:
    checks = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, query in CHECK_QUERIES.items():
            rows = conn.execute(query).fetchall()  # type: ignore[arg-type]
            checks.append(check(name, not rows, f"{len(rows)} offending: {rows[:5]}"))
    return checks


TOTALS = {
    "carts": "SELECT count(*) FROM checkout_cart",
    "orders": "SELECT count(*) FROM checkout_order",
    "payments": "SELECT count(*) FROM payments_payment",
    "payments canceled": "SELECT count(*) FROM payments_payment WHERE canceled_at IS NOT NULL",
    "remote authorizations (test)": (
        "SELECT count(*) FROM test_provider_ledgerentry WHERE operation = 'authorize'"
    ),
    "remote captures / refunds / cancels (test)": (
        "SELECT count(*) FILTER (WHERE operation = 'capture') || ' / '"
        " || count(*) FILTER (WHERE operation = 'refund') || ' / '"
        " || count(*) FILTER (WHERE operation = 'cancel') FROM test_provider_ledgerentry"
    ),
    "operations by type and status": (
        "SELECT string_agg(t, ', ' ORDER BY t) FROM (SELECT type || ' ' || status || ': '"
        " || count(*) t FROM payments_paymentoperation GROUP BY type, status) x"
    ),
    # Asked more than once: a lost answer or a killed process, resumed under the same key.
    "operations asked again (attempts > 1), by type": (
        "SELECT string_agg(t, ', ' ORDER BY t) FROM (SELECT type || ': ' || count(*) t"
        " FROM payments_paymentoperation WHERE attempts > 1 GROUP BY type) x"
    ),
}


def database_totals(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            name: conn.execute(q).fetchone()[0]  # type: ignore[arg-type,index]
            for name, q in TOTALS.items()
        }


def run_command(env: dict[str, str], name: str, *args: str) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "manage.py", name, *args],
        cwd=server.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    output = (process.stdout + process.stderr).strip()
    status = "pass" if process.returncode == 0 else "fail"
    return {
        "command": name,
        "status": status,
        "exit": process.returncode,
        "output": output[-20000:],
    }


def check(name: str, passed: bool | None, detail: str = "", skipped: str = "") -> dict[str, Any]:
    """`passed` None means the check could not run; `skipped` says why."""
    if passed is None:
        return {"check": name, "status": "skip", "detail": skipped}
    status = "pass" if passed else "fail"
    return {"check": name, "status": status, "detail": "" if passed else detail}


def command_check(result: dict[str, Any]) -> dict[str, Any]:
    return check(f"{result['command']} clean", result["status"] == "pass", result["output"][-300:])


def vanished_outcomes(dsn: str, cart_ids: list[str]) -> dict[str, int]:
    """What became of the carts whose shopper vanished after a lost authorization answer."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE completed_at IS NOT NULL),"
            " count(*) FILTER (WHERE completed_at IS NULL) FROM checkout_cart"
            " WHERE id = ANY(%s)",
            (cart_ids,),
        ).fetchone()
    completed, open_ = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"vanished": len(cart_ids), "completed by the worker": completed, "not completed": open_}
