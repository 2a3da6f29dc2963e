"""Settings helpers a host project calls from its own `settings.py` (no Django import here).

    from metacore.settings import sqlite_options
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **sqlite_options()}

SQLite is metacore's embedded default. Out of the box a Django SQLite database fails writes
under light concurrency ("database is locked"): transactions are DEFERRED, so two writers
that both read first each hold a read lock and the second one's upgrade to a write lock
cannot wait (SQLite returns SQLITE_BUSY at once to avoid the deadlock), and the default
rollback journal makes readers and the writer block each other. These options fix both:

- `transaction_mode: IMMEDIATE`: every `transaction.atomic()` takes the write lock when it
  begins, so concurrent writers queue on the busy timeout instead of failing;
- `timeout`: how long (seconds) a writer waits for the lock before "database is locked";
- `init_command`: WAL journal (readers never block the writer, nor it them) and
  `synchronous=NORMAL` (durable at every checkpoint; the setting SQLite recommends with WAL).

`manage.py check` warns (`metacore.W040`) when a file SQLite database lacks them.
"""

SQLITE_TIMEOUT_S = 20
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"


def sqlite_options(timeout: float = SQLITE_TIMEOUT_S) -> dict:
    """The `DATABASES[...]["OPTIONS"]` a SQLite database serving metacore needs."""
    return {"transaction_mode": "IMMEDIATE", "timeout": timeout, "init_command": SQLITE_INIT_COMMAND}
