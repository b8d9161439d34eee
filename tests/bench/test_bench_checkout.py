"""`make bench`'s arithmetic and options, without starting a server."""

from __future__ import annotations

from bench import checkout, server


def test_cpu_per_checkout_is_the_cores_busy_over_the_level_divided_by_its_checkouts() -> None:
    # Half a core for 8 s over 40 checkouts: 4 CPU seconds, 100 ms each.
    assert checkout.per_checkout_ms(0.5, 8.0, 40) == 100.0
    # Medusa's side passes CPU seconds with 1.0 for the time.
    assert checkout.per_checkout_ms(3.0, 1.0, 40) == 75.0


def test_cpu_per_checkout_is_unknown_when_no_checkout_finished() -> None:
    assert checkout.per_checkout_ms(0.5, 8.0, 0) is None
    assert checkout.per_checkout_ms(None, 8.0, 40) is None


def test_a_cluster_runs_two_workers_per_server_unless_told_otherwise() -> None:
    assert checkout.parse_args([]).workers == server.WORKERS
    assert checkout.parse_args(["--cluster"]).workers == checkout.CLUSTER_WORKERS == 2
    assert checkout.parse_args(["--cluster", "--workers", "3"]).workers == 3
