"""gunicorn for one web machine (deploy/README.md): `gunicorn -c deploy/gunicorn.conf.py
config.wsgi`. The numbers come from bench/server.py, measured on 2 cores."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core plus one (Python runs one thread at a time per process), threads for
# the time a request waits on PostgreSQL; workers x threads stays under DB_POOL_MAX x workers.
workers = int(os.environ.get("GUNICORN_WORKERS", (os.cpu_count() or 1) + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
keepalive = 10
timeout = 30
graceful_timeout = 30
# Imported once in the master: a killed worker is replaced in milliseconds.
preload_app = True
accesslog = "-"
# The request id (nginx's or the client's, echoed by the app) ties this line to the app's.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
