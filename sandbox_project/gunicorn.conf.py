"""gunicorn settings for the HTTP process (`make run`, docs/performance.md): one worker per
core, two threads each (`gthread`). Measured against sync workers (one per core plus one) on
the 2-core development machine, interleaved in one run: about twice the requests per second
on a get-one and on a list page. A gthread worker keeps clients' connections alive (a sync
worker closes each after one response), and while one thread waits on the database or the
socket, with the GIL released, the other runs Python."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", 2))
# A worker serves this many requests, then is replaced (bounds any slow growth of memory).
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = None
