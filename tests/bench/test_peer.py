"""`make bench-peer`'s arithmetic: both benches' outputs into one table of ratios and targets.
No Medusa, npm or server here: the inputs are shaped like bench.checkout's level summaries
and the JSON of Medusa's bench.py and sqlcount.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import medusa
from bench.flow import STEPS
from bench.peer import disturbed, medusa_side, ours_side, rows


def our_level(clients: int, per_second: float, *, complete_sql: int = 18) -> dict[str, Any]:
    steps = {
        step: {"median_ms": 10.0, "queries": {"median": 8, "min": 8, "max": 8}} for step in STEPS
    }
    steps["complete"] = {
        "median_ms": 15.0,
        "queries": {"median": complete_sql, "min": complete_sql, "max": complete_sql},
    }
    return {
        "clients": clients,
        "seconds": 10.0,
        "checkouts": int(per_second * 10),
        "checkouts_per_second": per_second,
        "errors": 0,
        "steps": steps,
        "flow": {"median_ms": 55.0, "queries": {"median": 50, "min": 50, "max": 50}},
        "cpu_cores": {
            "server": 0.5,
            "postgres": 0.1,
            "load generator": 0.1,
            "other processes": 0.0,
        },
        "peak_rss_mb": 300.0,
    }


def medusa_level(clients: int, per_second: float) -> dict[str, Any]:
    return {
        "clients": clients,
        "seconds": 10.0,
        "checkouts": int(per_second * 10),
        "checkouts_per_s": per_second,
        "errors": 0,
        "checkout_ms_median": 300.0,
        "machine_cpu_busy_pct": 80.0,
        "server_cpu_pct_of_one_core": 80.0,
        "server_mem_mib": {"VmRSS": 250, "VmHWM": 450 if clients == 16 else 260},
        "cpu_seconds": {"server": 8.0, "postgres": 2.0, "load generator": 1.0},
        "other_cores": 0.1,
    }


MEDUSA_SEQ = {
    "steps_ms": {
        "create_cart": {"median": 17.0},
        "add_line_item": {"median": 44.0},
        "update_cart": {"median": 32.0},
        "add_shipping_method": {"median": 31.0},
        "create_payment_sessions": {"median": 28.0},
        "select_payment_session": {"median": 24.0},
        "complete": {"median": 90.0},
        "total": {"median": 280.0},
    }
}
MEDUSA_SQL = {
    "complete": {"statements_per_run": [127, 129, 131]},
    "create_cart": {"statements_per_run": [19, 20, 20]},
    "checkout_7_steps_total_per_run": [350, 352, 351],
}


def table(our_levels: list[dict[str, Any]]) -> dict[str, Any]:
    ours = ours_side(our_levels)
    theirs = medusa_side(MEDUSA_SEQ, [medusa_level(1, 3.5), medusa_level(16, 5.0)], MEDUSA_SQL)
    return {row.metric: row for row in rows(ours, theirs)}


def test_each_ratio_is_ours_over_medusas_and_checked_against_issue_15():
    by_metric = table([our_level(1, 10.0), our_level(16, 50.0)])

    complete = by_metric["complete median, 1 client (ms)"]
    assert (complete.ours, complete.medusa) == (15.0, 90.0)
    assert complete.ratio == pytest.approx(1 / 6)
    assert complete.passed  # 1/6 exactly meets "<= 1/6"

    throughput = by_metric["checkouts/s, 16 clients"]
    assert throughput.ratio == pytest.approx(10.0)
    assert throughput.passed
    assert by_metric["checkouts/s, 1 client"].goal is None  # the target is at 16 clients


def test_server_cpu_per_checkout_is_process_time_over_the_level_divided_by_its_checkouts():
    cpu = table([our_level(1, 10.0), our_level(16, 50.0)])[
        "server CPU per checkout, 16 clients (ms)"
    ]

    # Ours: 0.5 cores x 10 s / 500 checkouts; Medusa: 80% of a core x 10 s / 50 checkouts.
    assert (cpu.ours, cpu.medusa) == (10.0, 160.0)
    assert cpu.ratio == pytest.approx(1 / 16)
    assert cpu.passed


def test_sql_limits_are_on_our_own_counts_and_medusas_are_the_median_of_its_runs():
    by_metric = table([our_level(1, 10.0), our_level(16, 9.0, complete_sql=21)])

    complete = by_metric["SQL statements, complete"]
    assert (complete.ours, complete.medusa) == (21, 129)  # our most seen, at any level
    assert complete.passed is False
    flow = by_metric["SQL statements, whole flow"]
    assert (flow.ours, flow.medusa) == (50, 351)
    assert flow.passed is False
    assert by_metric["checkouts/s, 16 clients"].passed is False


def test_a_level_not_run_shows_no_figure_and_no_verdict():
    by_metric = table([our_level(1, 10.0)])

    throughput = by_metric["checkouts/s, 16 clients"]
    assert throughput.ours is None
    assert throughput.ratio is None
    assert throughput.passed is None
    assert by_metric["server peak RSS (MiB)"].medusa == 450


def test_medusas_bench_output_is_read_whether_indented_or_one_document_a_line():
    text = '{\n "n": 3,\n "steps_ms": {}\n}\n{"clients": 1}\n{"clients": 4}\n'

    assert medusa.json_documents(text) == [{"n": 3, "steps_ms": {}}, {"clients": 1}, {"clients": 4}]


def test_the_peer_folder_is_found_beside_the_repository_unless_named(monkeypatch):
    monkeypatch.delenv("MEDUSA_PEER_DIR", raising=False)
    assert medusa.peer_dir() == medusa.server.ROOT.parent / "shared" / "peers" / "medusa"

    monkeypatch.setenv("MEDUSA_PEER_DIR", "../elsewhere/medusa")
    assert medusa.peer_dir() == (medusa.server.ROOT.parent / "elsewhere" / "medusa").resolve()

    monkeypatch.setenv("MEDUSA_PEER_DIR", "/opt/medusa")
    assert medusa.peer_dir() == Path("/opt/medusa")


def test_both_sides_split_the_cpu_per_checkout_between_server_postgres_and_client():
    ours = ours_side([our_level(16, 50.0)])["levels"][16]
    theirs = medusa_side(MEDUSA_SEQ, [medusa_level(16, 5.0)], MEDUSA_SQL)["levels"][16]

    # Ours: cores x 10 s / 500 checkouts. Medusa: CPU seconds of the call / 50 checkouts.
    parts = ("server_cpu_ms", "postgres_cpu_ms", "client_cpu_ms")
    assert [ours[part] for part in parts] == [10.0, 2.0, 2.0]
    assert [theirs[part] for part in parts] == [160.0, 40.0, 20.0]


def test_levels_where_other_work_took_the_cpu_are_named():
    ours = ours_side([our_level(1, 10.0)])
    theirs = medusa_side(MEDUSA_SEQ, [medusa_level(1, 3.5), medusa_level(16, 5.0)], MEDUSA_SQL)
    theirs["levels"][16]["other_cores"] = 1.2

    assert disturbed(ours, theirs) == ["Medusa at 16 clients: 1.2 cores"]
