"""The soak's operator: captures and refunds through the admin API, some with lost answers.

Each paid order the shoppers hand over is a `MoneyJob`, a few steps run by two operator
threads from one queue ordered by when each step is due (an asynchronous capture is
awaited without blocking the others). By the payment's `test` session data:

- `none` (the `manual` provider): capture in full, refund half, sometimes the refund sent
  twice with one key (it must move money once);
- `lost_capture` (`fail_after_capture`): the capture takes effect at the provider and its
  answer is lost (503). The operator either retries with the same key, or walks away and
  refunds anyway (the refund first settles the capture under its key, or the worker did);
- `lost_refund` (`fail_after_refund`): the same with a refund: retried with its key, or left
  to the worker; sometimes the operator also fills a second refund form (a new key);
- `async` (`async_operations`, settling 1 s later): the capture and the refund answer
  `pending` and the worker settles them by re-reading the provider.

What the operator asked for, lost answers included (the provider did act), is recorded per
payment in `tally.expected`; the end checks compare it with the database.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass

from bench.client import CONNECTION_ERRORS, Client, Reply
from bench.soak_tally import Soak

ADMIN = "/api/admin"

RETRY_LOST_SHARE = 0.5  # lost answers retried with the same key (the rest left to the worker)
SECOND_FORM_SHARE = 0.3  # after a lost refund answer, a second refund form (a new key)
REFUND_REPLAY_SHARE = 0.2  # manual refunds sent again with the same key
# How long the operator keeps retrying one request before giving up on that payment: a
# request killed mid-way holds its Idempotency-Key (409 idempotency_key_in_use), then its
# operation (409 invalid_state, "settling at the provider"), each for up to
# IDEMPOTENCY_LOCK_LEASE_SECONDS (10 s in the soak); connection errors while a server restarts.
PATIENCE_SECONDS = 30.0
# An asynchronous capture settles 1 s after it is asked, then at the worker's next sweep.
ASYNC_SETTLE_WITHIN_SECONDS = 20.0
# A refund refused because the capture before it is still being settled is tried again.
REFUND_ATTEMPTS = 5


@dataclass
class MoneyJob:
    payment_id: str
    amount: int
    fault: str  # "none", "lost_capture", "lost_refund" or "async"
    server: int  # which server the operator's requests go to (the other on failover)
    step: str = "capture"
    captured: int = 0  # what the payment must show at the end
    refunded: int = 0
    uncertain: bool = False  # an answer never came: what moved is unknown, not checked
    refund_attempts: int = 0
    give_up_at: float = 0.0

    @property
    def base(self) -> str:
        return f"{ADMIN}/payments/{self.payment_id}"


class Operator:
    def __init__(self, soak: Soak, token: str, index: int) -> None:
        self.soak = soak
        self.tally = soak.tally
        self.rng = random.Random(soak.rng_seed - 1 - index)
        headers = {"Authorization": f"Token {token}"}
        self.clients = [soak.client(url, headers=headers) for url in soak.urls]

    def run(self, stop: threading.Event) -> None:
        try:
            while not (stop.is_set() and self.soak.jobs.empty()):
                try:
                    due, _, job = self.soak.jobs.get(timeout=0.5)
                except queue.Empty:
                    continue
                wait = due - time.monotonic()
                if wait > 0:
                    self.soak.schedule(due, job)
                    time.sleep(min(wait, 0.2))
                    continue
                self.advance(job)
        finally:
            for client in self.clients:
                client.close()

    def advance(self, job: MoneyJob) -> None:
        """Run the job's next step; schedule the one after, or record the job's end."""
        step = getattr(self, f"_{job.step}")
        next_step, delay = step(job)
        if next_step is not None:
            job.step = next_step
            self.soak.schedule(time.monotonic() + delay, job)
            return
        self.tally.note("settled", job.fault)
        if not job.uncertain:
            with self.tally.lock:
                self.tally.expected[job.payment_id] = (job.captured, job.refunded)

    # Steps: each returns (the next step or None when done, seconds until it is due) -------

    def _capture(self, job: MoneyJob) -> tuple[str | None, float]:
        key = uuid.uuid4().hex
        reply = self.post(job, "admin capture", f"{job.base}/capture", {}, key)
        if reply is None:
            return self._lost_track(job, "capture: no answer")
        if reply.status == 503 and job.fault == "lost_capture":
            job.captured = job.amount  # it took effect at the provider; the answer was lost
            if self.rng.random() < RETRY_LOST_SHARE:
                self.tally.note("lost_answers", "capture retried with its key")
                reply = self.post(job, "admin capture (retry)", f"{job.base}/capture", {}, key)
                reply = self.until_answered(
                    job, "admin capture (retry)", "/capture", {}, key, reply
                )
                if reply is None or reply.status != 200:
                    return self._mismatch(job, f"capture retry {_status(reply)}")
            else:
                self.tally.note("lost_answers", "capture left to the worker, then refunded")
            return "refund", 0.0
        if reply.status != 200:
            return self._mismatch(job, f"capture {reply.status}")
        job.captured = job.amount
        if job.fault == "async":
            job.give_up_at = time.monotonic() + ASYNC_SETTLE_WITHIN_SECONDS
            return "await_capture", 1.0
        return "refund", 0.0

    def _await_capture(self, job: MoneyJob) -> tuple[str | None, float]:
        """An asynchronous capture is refundable once the worker settled it."""
        try:
            payment = self.client(job).request("GET", job.base).json()
        except CONNECTION_ERRORS:
            self.failover(job)
            return "await_capture", 0.5
        if payment.get("amount_captured") == job.amount:
            return "refund", 0.0
        if time.monotonic() > job.give_up_at:
            return self._mismatch(
                job, f"async capture unsettled after {ASYNC_SETTLE_WITHIN_SECONDS:g} s"
            )
        return "await_capture", 1.0

    def _refund(self, job: MoneyJob) -> tuple[str | None, float]:
        amount = job.amount // 2 if job.fault == "none" else job.amount // 4
        body = {"amount": amount, "reason": "other"}
        key = uuid.uuid4().hex
        reply = self.post(job, "admin refund", f"{job.base}/refund", body, key)
        if reply is not None and reply.status == 503 and job.fault == "lost_capture":
            # This refund's own provider call cannot lose its answer (the switch is the
            # capture's): the 503 says the capture before it is still unknown here.
            self.note_retry_503(job, "admin refund after a lost capture", reply)
            reply = self.until_answered(job, "admin refund", "/refund", body, key, reply)
        if reply is None:
            return self._lost_track(job, "refund: no answer")
        if reply.status in (409, 422) and job.fault == "lost_capture":
            # The capture whose answer was lost is being settled by the worker right now
            # (its lease): nothing was refunded; a new form after a moment.
            job.refund_attempts += 1
            if job.refund_attempts < REFUND_ATTEMPTS:
                self.tally.note("lost_answers", f"refund after a lost capture: {reply.status}")
                return "refund", 1.0
        if reply.status == 503 and job.fault == "lost_refund":
            job.refunded += amount  # it took effect at the provider
            if self.rng.random() < RETRY_LOST_SHARE:
                self.tally.note("lost_answers", "refund retried with its key")
                again = self.post(job, "admin refund (retry)", f"{job.base}/refund", body, key)
                again = self.until_answered(
                    job, "admin refund (retry)", "/refund", body, key, again
                )
                if again is None or again.status != 200:
                    return self._mismatch(job, f"refund retry {_status(again)}")
            else:
                self.tally.note("lost_answers", "refund left to the worker")
            if self.rng.random() < SECOND_FORM_SHARE:
                # A second form while the first refund's outcome is unknown here: it must
                # first settle that one (SPEC 6), then refund once more, not three times.
                self.tally.note("lost_answers", "second refund form")
                key = uuid.uuid4().hex
                kind = "admin refund (2nd form)"
                second = self.post(job, kind, f"{job.base}/refund", body, key)
                # Its first 503 is the switch again (or the first refund still unknown here):
                # retried with its key until the real outcome, so what moved is known.
                if second is not None and second.status == 503:
                    second = self.post(job, kind, f"{job.base}/refund", body, key)
                    second = self.until_answered(job, kind, "/refund", body, key, second)
                if second is None:
                    return self._lost_track(job, "second refund: no answer")
                if second.status != 200:
                    return self._mismatch(job, f"second refund form {second.status}")
                job.refunded += amount
            return None, 0.0
        if reply.status != 200:
            return self._mismatch(job, f"refund {reply.status} {reply.body[:120]!r}")
        job.refunded += amount
        if job.fault == "none" and self.rng.random() < REFUND_REPLAY_SHARE:
            self.tally.note("refund_replays", 1)
            again = self.post(job, "admin refund (replay)", f"{job.base}/refund", body, key)
            if again is None or again.status != 200 or again.body != reply.body:
                return self._mismatch(job, f"refund replay {_status(again)}")
        return None, 0.0

    def _mismatch(self, job: MoneyJob, what: str) -> tuple[None, float]:
        self.tally.note("settle_mismatches", f"{job.payment_id} ({job.fault}): {what}")
        job.uncertain = True
        return None, 0.0

    def _lost_track(self, job: MoneyJob, what: str) -> tuple[None, float]:
        """Every retry died with a server process: what moved is not known here."""
        self.tally.note("lost_answers", f"operator gave up: {what}")
        job.uncertain = True
        return None, 0.0

    def until_answered(
        self, job: MoneyJob, kind: str, path: str, body: dict, key: str, reply: Reply | None
    ) -> Reply | None:
        """A retry, with its key, of a request whose provider answer was lost must get the
        provider's real outcome (SPEC 6: it asks the provider again under the same provider
        key, which answers). Each further 503 is noted, and the same key tried again."""
        give_up_at = time.monotonic() + PATIENCE_SECONDS
        while reply is not None and reply.status == 503 and time.monotonic() < give_up_at:
            self.note_retry_503(job, kind, reply)
            time.sleep(1.0)
            reply = self.post(job, kind, f"{job.base}{path}", body, key)
        return reply

    def note_retry_503(self, job: MoneyJob, kind: str, reply: Reply) -> None:
        detail = reply.json().get("message", "") if reply.code else reply.body[:100]
        self.tally.note("retry_503s", f"{job.payment_id} ({job.fault}) {kind}: {detail!r}")

    # HTTP ---------------------------------------------------------------------------------

    def client(self, job: MoneyJob) -> Client:
        return self.clients[job.server]

    def failover(self, job: MoneyJob) -> None:
        """A connection error: the next attempt goes to the other server (behind nginx, to
        nginx again, which picks one)."""
        self.tally.note("connection_errors", 1)
        job.server = (job.server + 1) % len(self.clients)

    def post(
        self, job: MoneyJob, kind: str, path: str, body: dict, key: str | None = None
    ) -> Reply | None:
        """POST with one Idempotency-Key for every retry, like a careful script."""
        key = key or uuid.uuid4().hex
        give_up_at = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < give_up_at:
            try:
                reply = self.client(job).request("POST", path, body, {"Idempotency-Key": key})
            except CONNECTION_ERRORS:
                self.failover(job)
                time.sleep(0.2)
                continue
            self.tally.record(kind, reply, allowed_503=job.fault in ("lost_capture", "lost_refund"))
            # 409: a request with this key, or an operation on this payment, is in flight
            # (or died holding its lease): the same key again shortly. A 409 stored as this
            # key's final answer is replayed as such, and is final.
            if reply.status != 409 or reply.headers.get("idempotent-replayed") == "true":
                return reply
            time.sleep(0.5)
        return None


def _status(reply: Reply | None) -> str:
    return str(reply.status) if reply is not None else "no answer"
