"""Production settings plus the bench-only query counter.

The benchmark runs the production settings unchanged except for one outermost middleware,
so the figures are production's and `config/settings/production.py` never learns about
benchmarks.
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import MIDDLEWARE

# Outermost, so statements issued by any other middleware are counted too.
MIDDLEWARE = ["bench.query_count.QueryCountMiddleware", *MIDDLEWARE]
