"""`python -m bench.checkout_profile`: where a checkout's server time goes, under cProfile.

Prepares a fresh database (`payments_profile`) as `make bench` does, then, in this one
process, runs the five-step checkout through Django's test client against the bench
settings, `--checkouts` times after a warm-up, and prints the statements per step and the
top of the profile (cumulative). Times are inflated by the profiler (about twice);
`bench/results/profile.prof` keeps the whole profile for `python -m pstats` or snakeviz.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import uuid
from typing import Any

from bench import server
from bench.flow import BENCH_REGION

DATABASE = "payments_profile"
PROFILE_FILE = server.RESULTS / "profile.prof"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkouts", type=int, default=100)
    parser.add_argument("--top", type=int, default=40, help="lines of the profile to print")
    parser.add_argument("--filter", default="", help="only functions matching this regex")
    return parser.parse_args(argv)


def prepare() -> None:
    """A fresh database with the demo store and the bench's region, this process's env."""
    env = server.server_env(server.database_recreate(DATABASE), settings="bench.settings")
    server.project_prepare(env)
    server.manage(env, "shell", "--command", server.BENCH_REGION_SEED)
    os.environ.update({**env, "ALLOWED_HOSTS": "testserver"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Preparing a fresh database {DATABASE} ...")
    prepare()
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    regions = client.get("/api/store/regions").json()
    region = next(r for r in regions if r["name"] == BENCH_REGION)
    product = client.get(f"/api/store/products?region_id={region['id']}").json()[0]

    def post(path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body) if body is not None else None
        response = client.post(path, data, content_type="application/json", headers=headers)
        assert response.status_code in (200, 201), (path, response.content[:300])
        return response.json()

    def checkout() -> list[tuple[str, int]]:
        steps: list[tuple[str, int]] = []

        def step(name: str, path: str, body: Any = None, **headers: str) -> Any:
            with CaptureQueriesContext(connection) as queries:
                answer = post(path, body, headers)
            sent = [q for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
            steps.append((name, len(sent)))
            return answer

        cart = step("create_cart", "/api/store/carts", {"region_id": region["id"]})
        carts = f"/api/store/carts/{cart['id']}"
        step("add_item", f"{carts}/line-items", {"product_id": product["id"], "quantity": 1})
        step("sessions", f"{carts}/payment-sessions")
        step("select", f"{carts}/payment-session", {"provider_id": "manual"})
        step("complete", f"{carts}/complete", **{"Idempotency-Key": uuid.uuid4().hex})
        return steps

    for _ in range(20):  # warm-up: imports, the pool, Django's caches
        statements = checkout()
    print("SQL statements per step (BEGIN/COMMIT not counted):")
    for name, count in statements:
        print(f"  {name:12} {count}")
    print(f"  {'whole flow':12} {sum(count for _, count in statements)}")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.checkouts):
        checkout()
    profile.disable()
    server.RESULTS.mkdir(parents=True, exist_ok=True)
    profile.dump_stats(PROFILE_FILE)
    stats = pstats.Stats(profile).sort_stats("cumulative")
    stats.print_stats(*([args.filter] if args.filter else []), args.top)
    print(f"Whole profile: {PROFILE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
