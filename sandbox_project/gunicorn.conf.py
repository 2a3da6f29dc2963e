"""gunicorn settings for the HTTP process (`make run`, docs/performance.md): sync workers,
one per core plus one, so a request never waits on an event loop's thread hand-offs and a
worker blocked on the database leaves the cores to the others."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = "sync"
# A worker serves this many requests, then is replaced (bounds any slow growth of memory).
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = None
