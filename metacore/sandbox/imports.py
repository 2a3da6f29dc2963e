"""The `metacore_host` imports: what a guest may ask of the host, each checked and audited.

Signatures follow the upstream kernel (runtime/wasm/capabilities.go); every string or
buffer is a (ptr i32, len i32) pair and every reply is a packed i64 written through the
guest's own `alloc`:

  log(msg)                                  -> ()
  env_get(key)                              -> i64  installation setting (0 when unset)
  http_fetch(url, method, body)             -> i64  {"status","body"} | {"error","message"}
  http_request(url, method, headers, body)  -> i64  same, with a JSON object of headers
  db_query(sql, args)                       -> i64  {"success","data":{"rows","rowCount","columns"},"meta"}
  db_exec(sql, args)                        -> i64  {"success","data":{"rowsAffected"[,"rows","columns"]},"meta"}
  event_emit(name, payload)                 -> i64  {"success","data":{"event","subscribers"},"meta"}
                                                    (payload {"$users": [...], ...}: to those users, see _emit_to_users)

A pointer/length outside the guest's memory raises BadPointer, which stops the guest (a
guest error, never a host crash). Denials and bad input come back to the guest as error
envelopes so it can decide; every call except `log` is audited as `sandbox.import`.
"""

from __future__ import annotations

import base64
import contextvars
import datetime
import decimal
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from wasmtime import Caller, FuncType, Linker, ValType

from metacore.audit.sinks import atomic_with_audit
from metacore.context import CallContext
from metacore.errors import CapabilityDenied, MetacoreError
from metacore.sandbox import abi
from metacore.sandbox import sql as sqlguard
from metacore.sandbox.abi import GuestMemory
from metacore.sandbox.errors import HostFailure, SandboxError, SQLRefused
from metacore.schema.naming import schema_name

if TYPE_CHECKING:
    from _typeshed.dbapi import DBAPICursor
    from django.db.backends.base.base import BaseDatabaseWrapper

    from metacore.audit.pipe import AuditPipe
    from metacore.hub.publisher import HubPublisher
    from metacore.installer.tenant_schemas import TenantSchemaService
    from metacore.manifest.model import Manifest
    from metacore.schema.registry import ModelRegistry
    from metacore.schema.roles import GuestSession
    from metacore.security.enforcer import Enforcer
    from metacore.security.ssrf import Egress

I32, I64 = "i32", "i64"
_VALTYPES = {"i32": ValType.i32, "i64": ValType.i64}

log = logging.getLogger("metacore.sandbox")

LOG_LINE_MAX = 16 * 1024
EVENT_NAME_MAX = 256
EVENT_PAYLOAD_MAX = 256 * 1024
EVENT_USERS_MAX = 1000  # recipients of one event_emit to users
DB_MAX_ROWS = 10_000  # db_query/db_exec limits, as upstream (host-side, not per addon)
DB_MAX_BYTES = 8 * 1024 * 1024
DB_TIMEOUT_MS = 5_000
HOST_WRITTEN = {
    "id",
    "organization_id",
    "created_at",
    "deleted_at",
}  # never UPDATEd by a guest (updated_at: by the host's own SET)


#: A host import's implementation: (invocation, guest memory, the guest's i32/i64 arguments) -> result.
HostImpl = Callable[..., int | None]
_Impl = TypeVar("_Impl", bound=HostImpl)


class _Answer(Protocol):
    """event_emit's reply: the envelope, written to the guest."""

    def __call__(self, ok: bool, code: str = "", message: str = "", data: object = None) -> int: ...


@dataclass(frozen=True)
class ImportServices:
    """What the imports act through: the SandboxService's own collaborators, never a global."""

    enforcer: Enforcer
    egress: Egress
    audit: AuditPipe
    hub: HubPublisher
    tenant_schemas: TenantSchemaService
    registry: ModelRegistry


@dataclass
class Invocation:
    """Everything host imports may know about the current call (set by the service)."""

    addon_key: str
    export: str
    services: ImportServices | None = None  # None only for guests that call no checked import
    manifest: Manifest | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # unsealed installation settings (JSON values)
    tenant: str | None = None
    actor: str | None = None
    request_id: str = ""
    using: str = "default"
    logs: list[dict[str, str]] = field(default_factory=list)
    deadline: float | None = None  # time.monotonic() at which the call's wall-time budget ends
    _partial: dict[str, bytes] = field(default_factory=dict)  # stream -> bytes after its last newline

    def remaining_ms(self, cap_ms: int) -> int:
        """Milliseconds a host operation may still take: the call's remaining budget, at most `cap_ms`."""
        if self.deadline is None:
            return cap_ms
        return min(cap_ms, int((self.deadline - time.monotonic()) * 1000))

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"metacore.addons.{self.addon_key}")

    def add_log(self, stream: str, line: str) -> None:
        line = line[:LOG_LINE_MAX]
        if len(self.logs) < 1000:
            self.logs.append({"stream": stream, "message": line})
        self.logger.info("%s %s: %s", self.export, stream, line)

    def _stream(self, stream: str, data: bytes) -> None:
        buffered = self._partial.get(stream, b"") + data
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            self.add_log(stream, line.decode("utf-8", "replace"))
        self._partial[stream] = rest[-LOG_LINE_MAX:]

    def guest_stdout(self, data: bytes) -> None:
        self._stream("stdout", data)

    def guest_stderr(self, data: bytes) -> None:
        self._stream("stderr", data)

    def flush(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self.add_log(stream, rest.decode("utf-8", "replace"))
        self._partial.clear()

    def call_context(self) -> CallContext:
        """The call's context as the enforcer and egress take it (who, which tenant, request id)."""
        return CallContext(
            actor=self.actor or "", tenant=self.tenant, request_id=self.request_id, using=self.using
        )


# The call being run on this thread (the engine sets it around a guest's export).
current_invocation: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "metacore_sandbox_invocation", default=None
)


@dataclass(frozen=True)
class HostFunction:
    name: str
    params: tuple[str, ...]  # ValType names; a FuncType is built per engine (wasmtime types are engine-bound)
    results: tuple[str, ...]
    impl: HostImpl

    def functype(self) -> FuncType:
        return FuncType([_VALTYPES[t]() for t in self.params], [_VALTYPES[t]() for t in self.results])


HOST_FUNCTIONS: dict[str, HostFunction] = {}


def host_function(name: str, params: list[str], results: list[str]) -> Callable[[_Impl], _Impl]:
    def register(impl: _Impl) -> _Impl:
        HOST_FUNCTIONS[name] = HostFunction(name, tuple(params), tuple(results), impl)
        return impl

    return register


def define_host_functions(linker: Linker) -> None:
    for fn in HOST_FUNCTIONS.values():
        linker.define_func(abi.HOST_MODULE, fn.name, fn.functype(), _bind(fn), access_caller=True)


def _bind(fn: HostFunction) -> Callable[..., int | None]:
    def call(caller: Caller, *args: int) -> int | None:
        invocation = current_invocation.get()
        exports = caller.get("memory"), caller.get("alloc"), caller.get("free")
        guest = GuestMemory(caller, *exports)  # type: ignore[arg-type]  # the engine admits only modules exporting memory and alloc
        if invocation is None:  # only reachable from a module run outside the service
            return None if not fn.results else 0
        try:
            return fn.impl(invocation, guest, *args)
        except SandboxError:
            raise
        except Exception as exc:  # a host-side bug stops this guest, never the process
            log.exception("metacore_host.%s failed for addon %s", fn.name, invocation.addon_key)
            raise HostFailure(f"metacore_host.{fn.name} failed: {exc}") from exc

    return call


def _reply(guest: GuestMemory, payload: object) -> int:
    return guest.give(json.dumps(payload, default=_json_default, separators=(",", ":")).encode())


def _json_default(value: object) -> str:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _services(invocation: Invocation) -> ImportServices:
    if invocation.services is None:
        raise HostFailure(f"{invocation.export}: no services were given to this call's imports")
    return invocation.services


def _audit(
    invocation: Invocation,
    name: str,
    target: str,
    decision: str = "allow",
    reason: str = "",
    **details: object,
) -> None:
    _services(invocation).audit.record(
        "sandbox.import",
        actor=invocation.actor or "",
        tenant=invocation.tenant or "",
        addon=invocation.addon_key,
        target=f"metacore_host.{name} {target}".strip(),
        decision=decision,
        reason=reason,
        request_id=invocation.request_id,
        details={"import": name, "export": invocation.export, **details},
    )


def _check(invocation: Invocation, kind: str, target: str) -> None:
    """Ask the enforcer; CapabilityDenied (enforce mode) propagates to the caller."""
    _services(invocation).enforcer.check(
        invocation.addon_key, kind, target, invocation.call_context(), {"via": "sandbox"}
    )


# -- log / env_get ----------------------------------------------------------------------


@host_function("log", [I32, I32], [])
def host_log(invocation: Invocation, guest: GuestMemory, ptr: int, length: int) -> None:
    guest.check(ptr, length, "log message")
    text = guest.read(ptr, min(length, LOG_LINE_MAX), "log message")
    invocation.add_log("log", text.decode("utf-8", "replace"))


@host_function("env_get", [I32, I32], [I64])
def host_env_get(invocation: Invocation, guest: GuestMemory, ptr: int, length: int) -> int:
    key = guest.read_text(ptr, length, "env_get key")
    value = invocation.settings.get(key)
    _audit(invocation, "env_get", key, found=value is not None)
    if value is None or value == "":
        return 0
    text = value if isinstance(value, str) else json.dumps(value)
    return guest.give(text.encode())


# -- http ---------------------------------------------------------------------------------


@host_function("http_fetch", [I32, I32, I32, I32, I32, I32], [I64])
def host_http_fetch(
    invocation: Invocation,
    guest: GuestMemory,
    url_ptr: int,
    url_len: int,
    method_ptr: int,
    method_len: int,
    body_ptr: int,
    body_len: int,
) -> int:
    url = guest.read_text(url_ptr, url_len, "http_fetch url")
    method = guest.read_text(method_ptr, method_len, "http_fetch method")
    body = guest.read(body_ptr, body_len, "http_fetch body")
    return _reply(guest, _http(invocation, url, method, {}, body))


@host_function("http_request", [I32, I32, I32, I32, I32, I32, I32, I32], [I64])
def host_http_request(
    invocation: Invocation,
    guest: GuestMemory,
    url_ptr: int,
    url_len: int,
    method_ptr: int,
    method_len: int,
    hdr_ptr: int,
    hdr_len: int,
    body_ptr: int,
    body_len: int,
) -> int:
    url = guest.read_text(url_ptr, url_len, "http_request url")
    method = guest.read_text(method_ptr, method_len, "http_request method")
    raw_headers = guest.read(hdr_ptr, hdr_len, "http_request headers")
    body = guest.read(body_ptr, body_len, "http_request body")
    try:
        headers = json.loads(raw_headers) if raw_headers else {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("not an object of strings")
    except ValueError as exc:
        return _reply(
            guest, {"error": "bad_request", "message": f"headers must be a JSON object of strings: {exc}"}
        )
    return _reply(guest, _http(invocation, url, method, headers, body))


def _http(
    invocation: Invocation, url: str, method: str, headers: dict[str, str], body: bytes
) -> dict[str, object]:
    """The egress checks http:fetch (every redirect hop too) and the SSRF guard; one budget
    (METACORE['HTTP_TIMEOUT_S'], never past the call's own deadline) covers connect and every
    read; the size cap is METACORE['HTTP_MAX_BYTES']; Host is not the guest's to set."""
    from metacore.conf import metacore_settings

    method = (method or "GET").upper()
    if body and not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    started = time.perf_counter()
    budget_ms = invocation.remaining_ms(int(metacore_settings.HTTP_TIMEOUT_S * 1000))
    if budget_ms <= 0:
        return {"error": "transport", "message": "the call's time budget is spent"}
    try:
        response = _services(invocation).egress.fetch(
            url,
            method=method,
            body=body or None,
            headers=headers,
            timeout=budget_ms / 1000,
            addon_key=invocation.addon_key,
            context=invocation.call_context(),
            details={"via": "sandbox"},
        )
    except MetacoreError as exc:
        code = "forbidden" if exc.status == 403 else ("bad_request" if exc.status == 400 else "transport")
        _audit(
            invocation,
            "http_fetch",
            url,
            "deny" if code == "forbidden" else "",
            exc.message,
            method=method,
            code=code,
        )
        return {"error": code, "message": exc.message}
    _audit(
        invocation,
        "http_fetch",
        url,
        method=method,
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return {"status": response.status, "body": response.body.decode("utf-8", "replace")}


# -- database -----------------------------------------------------------------------------


@host_function("db_query", [I32, I32, I32, I32], [I64])
def host_db_query(
    invocation: Invocation, guest: GuestMemory, sql_ptr: int, sql_len: int, args_ptr: int, args_len: int
) -> int:
    sql_text = guest.read_text(sql_ptr, sql_len, "db_query sql")
    raw_args = guest.read(args_ptr, args_len, "db_query args")
    return _reply(guest, run_sql(invocation, sql_text, raw_args, write=False))


@host_function("db_exec", [I32, I32, I32, I32], [I64])
def host_db_exec(
    invocation: Invocation, guest: GuestMemory, sql_ptr: int, sql_len: int, args_ptr: int, args_len: int
) -> int:
    sql_text = guest.read_text(sql_ptr, sql_len, "db_exec sql")
    raw_args = guest.read(args_ptr, args_len, "db_exec args")
    return _reply(guest, run_sql(invocation, sql_text, raw_args, write=True))


def run_sql(invocation: Invocation, sql_text: str, raw_args: bytes, *, write: bool) -> dict[str, object]:
    """db_query / db_exec: parse and confine, then run in a savepoint behind the database's
    own wall, answering the upstream envelope."""
    from metacore.schema.errors import ConfinementUnavailable

    name = "db_exec" if write else "db_query"
    started = time.perf_counter()
    connection = connections[invocation.using]
    meta: dict[str, object] = {"schema": schema_name(invocation.addon_key)}

    def fail(code: str, message: str) -> dict[str, object]:
        meta["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
        _audit(
            invocation,
            name,
            sql_text[:200],
            "deny" if code in ("forbidden", "confinement_unavailable") else "",
            message,
            code=code,
        )
        return {"success": False, "error": {"code": code, "message": message}, "meta": meta}

    try:
        args = _decode_args(raw_args, connection.vendor)
        resolver = _TableResolver(invocation, connection.vendor)
        tenant = _tenant_param(invocation.tenant, connection.vendor)
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        prepared = sqlguard.prepare(
            sql_text, args, resolver, write=write, tenant=tenant, now=now, vendor=connection.vendor
        )
        confined = resolver.confined_manifest()
        meta["schema"] = schema_name(confined.key)
    except SQLRefused as exc:
        return fail(exc.code, exc.message)
    except CapabilityDenied as exc:
        return fail("forbidden", exc.message)
    budget_ms = invocation.remaining_ms(DB_TIMEOUT_MS)
    if budget_ms <= 0:
        return fail("timeout", "the call's time budget is spent")
    max_rows = DB_MAX_ROWS
    wall = _database_wall(connection, resolver, confined, write, budget_ms)
    try:
        # A write's audit record commits with it (inserted before the commit, outside the wall).
        with atomic_with_audit(invocation.using) if write else transaction.atomic(using=invocation.using):
            with wall:
                cursor = (
                    connection.create_cursor()
                )  # not Django's debug wrapper: the wall judges only this statement
                try:
                    with connection.wrap_database_errors:
                        wall.run(cursor, prepared.sql, prepared.params)
                    columns: list[str] | None = (
                        [c[0] for c in cursor.description] if cursor.description else None
                    )
                    rows = cursor.fetchmany(max_rows + 1) if columns is not None else []
                    affected = cursor.rowcount
                finally:
                    cursor.close()
            audited_rows = len(rows) if columns is not None else affected
            if write:
                _audit(invocation, name, sql_text[:200], tables=_table_names(prepared), rows=audited_rows)
    except ConfinementUnavailable as exc:
        return fail(exc.code, exc.message)
    except DatabaseError as exc:
        if wall.interrupted or getattr(exc.__cause__, "sqlstate", None) == "57014":  # query_canceled
            return fail("timeout", f"the statement ran past the call's {budget_ms} ms budget and was stopped")
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        code = (
            "forbidden"
            if (
                "not authorized" in message
                or "permission denied" in message
                or "row-level security" in message
            )
            else "db_error"
        )
        return fail(code, message)
    if len(rows) > max_rows:
        return fail("row_limit_exceeded", f"result exceeded {max_rows} rows")
    meta["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
    meta["truncated"] = False
    data: dict[str, object]
    if write:
        data = {"rowsAffected": affected if columns is None else len(rows)}
        if columns is not None:
            data.update(
                rows=[dict(zip(columns, r, strict=True)) for r in rows],
                columns=[{"name": c} for c in columns],
            )
    else:
        data = {
            "rows": [dict(zip(columns, r, strict=True)) for r in rows],  # type: ignore[arg-type]  # a SELECT always describes its columns
            "rowCount": len(rows),
            "columns": [{"name": c} for c in columns],  # type: ignore[union-attr]  # a SELECT always describes its columns
        }
    envelope = {"success": True, "data": data, "meta": meta}
    size = len(json.dumps(envelope, default=_json_default))
    if size > DB_MAX_BYTES:
        return fail("row_limit_exceeded", f"response of {size} bytes exceeds the {DB_MAX_BYTES}-byte cap")
    if not write:
        _audit(invocation, name, sql_text[:200], tables=_table_names(prepared), rows=audited_rows)
    return envelope


def _table_names(prepared: sqlguard.Prepared) -> list[str]:
    return [".".join(filter(None, t)) for t in prepared.tables]


class _TableResolver:
    """Logical table names -> physical Relations; the addon's own tables always, another
    addon's (`<addon>.<table>` or `addon_<addon>.<table>`) only when db:read grants it.
    Writes reach only the addon's own tables. A schema-per-tenant addon's tables are those
    of the call's organization's copy."""

    def __init__(self, invocation: Invocation, vendor: str) -> None:
        self.invocation = invocation
        self.vendor = vendor
        self.physical: set[str] = set()  # unquoted physical names used (the SQLite authorizer's list)
        # (schema, table) of other addons' tables read (PostgreSQL grants)
        self.foreign: set[tuple[str, str]] = set()

    def __call__(self, schema: str | None, name: str, for_write: bool) -> sqlguard.Relation:
        from metacore.schema.naming import addon_of_schema, physical_table

        own = self.invocation.addon_key
        addon = own
        if schema is not None:
            addon = addon_of_schema(schema)
        addon = addon.lower()
        manifest = self.invocation.manifest if addon == own else _manifest_of(self.invocation, addon)
        model = manifest.model(name) if manifest is not None else None
        if manifest is None or model is None:
            where = f"{addon}.{name}" if schema else name
            raise SQLRefused(f"table {where} is not one of the addon's tables", code="forbidden")
        if addon != own:
            if for_write:
                raise SQLRefused(
                    f"db_exec writes only the addon's own tables, not {addon}.{name}", code="forbidden"
                )
            _check(self.invocation, "db:read", f"{schema_name(addon)}.{model.table}")
        columns = frozenset(c.name for c in model.columns)
        space = self.space(addon, manifest)
        if self.vendor == "postgresql":
            if addon != own:
                self.foreign.add((schema_name(space), model.table))
            return sqlguard.Relation(
                schema_name(space), model.table, model.org_scoped, model.soft_delete, columns
            )
        table = physical_table(space, model.table, self.vendor)
        self.physical.add(table)
        return sqlguard.Relation(None, table, model.org_scoped, model.soft_delete, columns)

    def space(self, addon: str, manifest: Manifest) -> str:
        """Where `addon`'s tables are for this call: its own namespace, or (schema-per-tenant)
        the copy of the call's organization, provisioned on its first use."""
        if manifest.tenant_isolation != "schema":
            return addon
        tenant = _tenant_param(self.invocation.tenant, "postgresql")
        if tenant is None:
            raise SQLRefused(
                f"addon {addon} keeps its tables per organization and this call has none", code="forbidden"
            )
        try:
            return _services(self.invocation).tenant_schemas.space_for(addon, tenant)
        except MetacoreError as exc:  # not enabled for this organization, or no copy can be made
            raise SQLRefused(exc.message, code="forbidden") from None

    def confined_manifest(self) -> Manifest:
        """The manifest the guest role confines: the addon's, or its organization copy's."""
        from metacore.schema.registry import in_space

        manifest = cast("Manifest", self.invocation.manifest)  # the service sets every invocation's
        space = self.space(self.invocation.addon_key, manifest)
        return manifest if space == manifest.key else in_space(manifest, space)


def _tenant_param(tenant: str | None, vendor: str) -> uuid.UUID | str | None:
    """The invocation's organization as the database stores uuids (None: no usable tenant)."""
    try:
        value = uuid.UUID(str(tenant)) if tenant else None
    except ValueError:
        return None
    if value is None:
        return None
    return value if vendor == "postgresql" else value.hex


def _manifest_of(invocation: Invocation, addon_key: str) -> Manifest | None:
    """Another addon's manifest, when it is enabled for the calling organization."""
    registry = invocation.services.registry if invocation.services is not None else None
    if registry is None or not registry.enabled_for(addon_key, invocation.tenant):
        return None
    return registry.installed(addon_key).manifest


class _database_wall:
    """The database's own check under the parser.

    SQLite: an authorizer that allows only reads of the resolved tables (and, for db_exec,
    writes to them) and allowlisted functions, installed only while the guest's statement is
    prepared; and a progress handler that ends the statement at the call's deadline.
    PostgreSQL: the addon's guest role (schema/roles.py) with RLS and a statement timeout,
    entered with SET LOCAL ROLE and left afterwards."""

    PROGRESS_STEPS = 1000  # SQLite VM instructions between deadline checks

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        resolver: _TableResolver,
        confined: Manifest,
        write: bool,
        budget_ms: int,
    ) -> None:
        self.connection, self.resolver, self.write, self.budget_ms = connection, resolver, write, budget_ms
        self.confined = confined  # the manifest whose guest role runs the statement
        self.session: GuestSession | None = None
        self.deadline: float | None = None  # time.monotonic() at which SQLite's statement is stopped
        self.interrupted = False

    def __enter__(self) -> _database_wall:
        from metacore.schema.roles import GuestSession

        self.connection.ensure_connection()
        if self.connection.vendor == "postgresql":
            invocation = self.resolver.invocation
            self.session = GuestSession(
                self.connection,
                self.confined,
                _tenant_param(invocation.tenant, "postgresql"),
                self.budget_ms,
                sorted(self.resolver.foreign),
            )
            self.session.enter()
        return self

    def run(self, cursor: DBAPICursor, sql: str, params: Sequence[object]) -> None:
        if self.connection.vendor != "sqlite":
            cursor.execute(sql, params)
            return
        raw = self.connection.connection
        self.deadline = time.monotonic() + self.budget_ms / 1000
        raw.set_progress_handler(self._progress, self.PROGRESS_STEPS)
        raw.set_authorizer(self._authorize)
        try:
            cursor.execute(sql, params)
        finally:
            raw.set_authorizer(None)

    def __exit__(self, *exc: object) -> Literal[False]:
        if self.connection.vendor == "sqlite":
            if self.connection.connection is not None:
                self.connection.connection.set_progress_handler(None, 0)
        elif (
            self.session is not None
            and self.connection.connection is not None
            and not self.connection.needs_rollback
        ):
            try:
                self.session.leave()
            except DatabaseError:
                pass  # the surrounding savepoint is being rolled back; SET LOCAL goes with it
        return False

    def _progress(self) -> int:
        if time.monotonic() > self.deadline:  # type: ignore[operator]  # run() sets it before installing the handler
            self.interrupted = True
            return 1
        return 0

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, dbname: str | None, source: str | None
    ) -> int:
        allowed_tables = self.resolver.physical
        if action == sqlite3.SQLITE_SELECT or action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            return sqlite3.SQLITE_OK if arg1 in allowed_tables or arg1 is None else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return (
                sqlite3.SQLITE_OK
                if (arg2 or "").lower() in sqlguard.ALLOWED_FUNCTIONS
                else sqlite3.SQLITE_DENY
            )
        if self.write and action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_DELETE):
            return sqlite3.SQLITE_OK if arg1 in allowed_tables else sqlite3.SQLITE_DENY
        if self.write and action == sqlite3.SQLITE_UPDATE:  # arg2: the column; system ones are the host's
            if arg1 not in allowed_tables or arg2 in HOST_WRITTEN:
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


def _decode_args(raw: bytes, vendor: str) -> list[object]:
    """JSON array of arguments; objects `{"$uuid"}`, `{"$ts"}`, `{"$bytes"}` as upstream."""
    if not raw:
        return []
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise SQLRefused(f"args is not JSON: {exc}", code="arg_decode") from None
    if not isinstance(values, list):
        raise SQLRefused("args must be a JSON array", code="arg_decode")
    return [_decode_arg(v, vendor) for v in values]


def _decode_arg(value: object, vendor: str) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((marker, inner),) = value.items()
        try:
            if marker == "$uuid":
                parsed = uuid.UUID(str(inner))
                return parsed if vendor == "postgresql" else parsed.hex
            if marker == "$ts":
                return datetime.datetime.fromisoformat(str(inner).replace("Z", "+00:00"))
            if marker == "$bytes":
                return base64.b64decode(str(inner), validate=True)
        except ValueError as exc:
            raise SQLRefused(f"invalid {marker} argument: {exc}", code="arg_decode") from None
    raise SQLRefused(
        "unsupported argument (use JSON scalars or one of $uuid, $ts, $bytes)", code="arg_decode"
    )


# -- events -------------------------------------------------------------------------------


@host_function("event_emit", [I32, I32, I32, I32], [I64])
def host_event_emit(
    invocation: Invocation,
    guest: GuestMemory,
    name_ptr: int,
    name_len: int,
    payload_ptr: int,
    payload_len: int,
) -> int:
    from metacore.events import AddonEvent, addon_event, publish_on_commit

    started = time.perf_counter()
    name = ""
    meta: dict[str, object] = {"addon": invocation.addon_key, "envelopeVersion": 1}
    if invocation.tenant:
        meta["orgId"] = invocation.tenant

    def answer(ok: bool, code: str = "", message: str = "", data: object = None) -> int:
        meta["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
        if ok:
            return _reply(guest, {"success": True, "data": data, "meta": meta})
        _audit(invocation, "event_emit", name, "deny" if code == "forbidden" else "", message, code=code)
        return _reply(guest, {"success": False, "error": {"code": code, "message": message}, "meta": meta})

    if name_len <= 0 or name_len > EVENT_NAME_MAX:
        return answer(False, "invalid_event", f"event name must be 1..{EVENT_NAME_MAX} bytes")
    name = guest.read_text(name_ptr, name_len, "event_emit name")
    if payload_len > EVENT_PAYLOAD_MAX:
        return answer(False, "payload_too_large", f"payload exceeds {EVENT_PAYLOAD_MAX} bytes")
    raw = guest.read(payload_ptr, payload_len, "event_emit payload")
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        return answer(False, "invalid_payload", "payload is not JSON")
    if not isinstance(payload, dict):
        payload = {"value": payload}
    if not invocation.tenant:
        return answer(False, "no_active_org", "the invocation has no organization to scope the event to")
    if "$users" in payload:
        return _emit_to_users(invocation, name, payload, answer)
    try:
        _check(invocation, "event:emit", name)
    except CapabilityDenied as exc:
        return answer(False, "forbidden", exc.message)
    event = AddonEvent(addon=invocation.addon_key, name=name, tenant=invocation.tenant, payload=payload)
    publish_on_commit(addon_event, event, using=invocation.using)
    _audit(invocation, "event_emit", name)
    return answer(True, data={"event": name, "subscribers": len(addon_event.receivers)})


def _emit_to_users(invocation: Invocation, name: str, payload: dict[str, Any], answer: _Answer) -> int:
    """`event_emit(name, {"$users": [ids], ...})`: the event goes, once the call commits, as
    an `ADDON_EVENT` frame to those users' sockets opened under the call's organization only
    (never to the channel's subscribers, the event log or webhooks). Needs `event:notify`."""
    from metacore.events import AddonEvent
    from metacore.hub.publisher import addon_event_text

    users = payload.pop("$users")
    if (
        not isinstance(users, list)
        or not users
        or len(users) > EVENT_USERS_MAX
        or not all(isinstance(u, (str, int)) and not isinstance(u, bool) and str(u) for u in users)
    ):
        return answer(
            False,
            "invalid_payload",
            f'"$users" must list 1..{EVENT_USERS_MAX} user ids (strings or integers)',
        )
    try:
        _check(invocation, "event:notify", name)
    except CapabilityDenied as exc:
        return answer(False, "forbidden", exc.message)
    event = AddonEvent(addon=invocation.addon_key, name=name, tenant=invocation.tenant, payload=payload)
    frame = json.loads(addon_event_text(event))
    tenant, hub = invocation.tenant, _services(invocation).hub
    transaction.on_commit(lambda: hub.send_to_users(users, frame, tenant=tenant), using=invocation.using)
    _audit(invocation, "event_emit", name, users=[str(u) for u in users])
    return answer(True, data={"event": name, "users": len(set(map(str, users)))})
