"""The soak's nginx: its config is deploy's, nginx accepts it, and its access log is read
the way nginx writes it (a request passed to the next server names both)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import nginx
from bench.client import Reply


def test_the_soak_config_carries_deploys_proxy_settings(tmp_path: Path) -> None:
    config = nginx.render_config(tmp_path, 8080, ["127.0.0.1:9001", "127.0.0.1:9002"])

    deploy = nginx.DEPLOY_CONF.read_text()
    for directive in (
        "proxy_next_upstream error timeout;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-Id $payments_request_id;",
        "proxy_read_timeout 35s;",
        "keepalive 32;",
    ):
        assert directive in deploy
        assert directive in config
    assert "server 127.0.0.1:9002 max_fails=10 fail_timeout=10s;" in config
    assert "listen 127.0.0.1:8080;" in config


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_soak_config(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    # Its logs in tmp_path too: a fresh clone has no bench/results/ for nginx to open.
    upstreams = ["127.0.0.1:9001", "127.0.0.1:9002"]
    logs = {"access_log": tmp_path / "access.log", "error_log": tmp_path / "error.log"}
    conf.write_text(nginx.render_config(tmp_path, 8080, upstreams, **logs))

    checked = subprocess.run(
        ["nginx", "-p", str(tmp_path), "-c", str(conf), "-t"], capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stderr


def test_the_access_log_names_every_server_tried(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        '127.0.0.1 [02/Dec/2026:07:51:32 +0000] "POST /api/store/carts HTTP/1.1" 201 310 0.020'
        " 127.0.0.1:9002, 127.0.0.1:9001 rid=abc us=502, 201 t=1796197892.422\n"
        '127.0.0.1 [02/Dec/2026:07:51:33 +0000] "POST /api/store/carts/c/complete HTTP/1.1"'
        " 502 157 0.283 127.0.0.1:9001 rid=def us=502 t=1796197893.000\n"
    )

    (passed_on, died), unparsed = nginx.read_access_log(log)

    assert unparsed == []
    assert passed_on.upstreams == ["127.0.0.1:9002", "127.0.0.1:9001"]
    assert passed_on.answered_by == "127.0.0.1:9001" and not passed_on.by_nginx
    assert died.by_nginx and died.status == 502 and died.at == 1796197893.0


def test_a_502_without_the_apps_request_id_is_the_load_balancers() -> None:
    assert Reply(502, {"content-type": "text/html"}, b"<html>", 0.1).from_gateway
    assert not Reply(503, {"x-request-id": "abc"}, b"{}", 0.1).from_gateway
