# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PORT ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

SCREENSHOTS := test-artifacts/screenshots

.PHONY: install run test lint postgres redis browser nginx bench bench-peer soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# `make run` needs only what running needs (no test or lint tools).
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# The demo names the sandbox `test` provider, which no deployment gets unless it names it;
# its storefront page sends return URLs to its own origin.
RUN_ENV := DEBUG=true PAYMENT_PROVIDERS=manual,test \
	STOREFRONT_ORIGINS=http://127.0.0.1:$(PORT),http://localhost:$(PORT)

run: $(RUN_STAMP) redis
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py register_providers
	$(RUN_ENV) $(BIN)/python manage.py seed_demo
	@echo
	@echo "  Demo storefront: http://127.0.0.1:$(PORT)/"
	@echo "  Back office:     http://127.0.0.1:$(PORT)/admin/  (logins: the lines printed above by seed_demo)"
	@echo "  API docs:        http://127.0.0.1:$(PORT)/api/docs/"
	@echo
	@# The worker and its scheduler beside the web server; both stop together.
	$(RUN_ENV) $(BIN)/celery -A config worker --beat --schedule .celerybeat-schedule \
		--loglevel INFO & worker=$$!; trap "kill $$worker 2>/dev/null" EXIT; \
		$(RUN_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# The worker's broker (REDIS_URL): start the local Redis if it is down, installing Debian's
# redis-server first when it is missing (CI runs as root).
redis:
	@if ! $(BIN)/python -c "import redis, os; redis.Redis.from_url(os.environ.get('REDIS_URL', 'redis://127.0.0.1:6379/0'), socket_connect_timeout=1).ping()" 2>/dev/null; then \
		if ! command -v redis-server >/dev/null; then \
			echo "installing redis-server"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -q redis-server >/dev/null 2>&1 \
				|| (apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null); \
		fi; \
		echo "starting Redis"; \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
		for i in $$(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done; \
	fi

# PostgreSQL is what the suite runs on: start the local cluster if it is installed but down.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@pg_isready -h 127.0.0.1 -p 5432

# The browser tests drive Debian's Chromium; CI runs as root and can install it.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
			|| (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null); \
	fi

# The soak's load balancer: Debian's nginx, run by the soak itself on a free port (never the
# system service); CI runs as root and can install it.
nginx:
	@if ! command -v nginx >/dev/null && ! test -x /usr/sbin/nginx; then \
		echo "installing nginx-light"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q nginx-light >/dev/null 2>&1 \
			|| (apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null); \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy config payments checkout providers

test: install postgres redis browser lint
	$(BIN)/pytest
	@echo "Browser screenshots: $(CURDIR)/$(SCREENSHOTS)"

# Checkout latency, throughput, SQL statements per request and server memory under gunicorn
# and PostgreSQL, at 1, 4 and 16 clients (BENCH_SECONDS each, default 10; BENCH_ARGS for
# more, e.g. BENCH_ARGS="--workers 2 --sql-log"; BENCH_ARGS="--cluster" for nginx in front of
# two gunicorn servers, as the soak runs them; `make nginx` installs it). Figures, not a test:
# it exits 0.
bench: install postgres
	$(BIN)/python -m bench.checkout $(BENCH_ARGS)

# Our checkout against Medusa v1's (../shared/peers/medusa, or MEDUSA_PEER_DIR) in one sitting,
# one after the other, never both under load at once: per-step medians, checkouts/s at 1, 4
# and 16 clients (BENCH_SECONDS each, default 10), server CPU per checkout, SQL statements and
# RSS, as ratios against issue 15's targets. Medusa runs from bench/.medusa/ (git-ignored;
# `npm ci` only when its package-lock.json changed) on a fresh database `medusa_peer` and
# port 9000. BENCH_PEER_ARGS for more, e.g. "--skip-medusa-sql". Figures, not a test: it exits 0.
bench-peer: install postgres
	$(BIN)/python -m bench.peer $(BENCH_PEER_ARGS)

# Exactly-once under load and faults on a small cluster: nginx in front of two gunicorn
# servers, two Celery workers (with their schedulers), 16 clients for SOAK_SECONDS (default
# 300) with retries, double sends and lost answers; gunicorn and Celery processes and once a
# whole server are SIGKILLed on a schedule; then the workers drain and the checks run
# (bench/README.md). SOAK_ARGS="--no-nginx" for clients that pick a server themselves,
# "--database NAME" for another database than payments_soak. Fails if a check fails.
soak: install postgres redis nginx
	$(BIN)/python -m bench.soak $(SOAK_ARGS)
