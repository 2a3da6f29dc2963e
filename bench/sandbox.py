"""The wasm sandbox, against bare wasmtime measured in the same run.

1. Round trip of a 1 KiB JSON echo through `SandboxService.call()` (installation lookup,
   limits, a fresh store and instance, JSON in and out, the `sandbox.call` audit record)
   against a bare wasmtime call of the same export of the same module (fresh store and
   instance, alloc, write, call, read). Goal: under 2x. Reported with the default audit
   sinks and with audit sinks off (the database sink's INSERT is most of the gap), and for
   the engine alone (no database: what the sandbox's limits and checks cost).
2. A call whose guest runs one `db_query` (the helpdesk `summary` export: a GROUP BY over
   the tenant's 50 tickets), against the same service's `echo` call (no database), the
   bare SQL on the same connection, and the bare wasmtime echo: what the SQL walls (parse
   with pglast, allowlists, rewrite; on PostgreSQL the guest role, RLS and the host-written
   tenant; on SQLite the authorizer and progress handler) add to a call. Audit sinks off.
3. Instantiation per call: a fresh store with its limits plus `InstancePre.instantiate`
   (microseconds; goal < 100).
4. Loading a ~1 MiB module from the disk cache (`Module.deserialize_file`) against
   compiling it (ratio).
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

from bench._support import per_call, setup_django

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "helpdesk"


def _payload_1k():
    payload = {"items": [], "note": ""}
    while len(json.dumps(payload)) < 1000:
        payload["items"].append({"id": len(payload["items"]), "name": "item"})
    payload["note"] = "x" * (1024 - len(json.dumps(payload)))
    return payload


def bare_call(wasm):
    """A closure doing what any embedder must: store, instance, alloc, write, call, read."""
    from wasmtime import Engine, FuncType, Linker, Module, Store, ValType

    engine = Engine()
    linker = Linker(engine)
    for name, params, results in (("log", 2, 0), ("db_query", 4, 1), ("db_exec", 4, 1), ("event_emit", 4, 1)):
        linker.define_func(
            "metacore_host",
            name,
            FuncType([ValType.i32()] * params, [ValType.i64()] * results),
            lambda *args: 0 if args else None,
        )
    module = Module(engine, wasm)
    data = json.dumps(_payload_1k(), separators=(",", ":")).encode()

    def run():
        store = Store(engine)
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        memory = exports["memory"]
        ptr = exports["alloc"](store, len(data))
        memory.write(store, data, ptr)
        packed = exports["echo"](store, ptr, len(data)) & (2**64 - 1)
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return json.loads(bytes(memory.read(store, out_ptr, out_ptr + out_len)))

    assert run() == _payload_1k()
    return run


def round_trip():
    from django.test import override_settings

    from metacore.kernel import get_kernel, reset_kernel

    get_kernel().installer.install(EXAMPLE)
    payload = _payload_1k()
    wasm = (EXAMPLE / "backend" / "helpdesk.wasm").read_bytes()
    bare = per_call(bare_call(wasm), number=300)
    print(f"  bare wasmtime echo (1 KiB JSON):       {bare * 1e6:8.1f} us")
    from metacore.sandbox.engine import Limits
    from metacore.sandbox.service import get_engine

    engine, data = get_engine(), json.dumps(payload, separators=(",", ":")).encode()
    compiled = engine.load(wasm)
    core = per_call(lambda: json.loads(engine.invoke(compiled, "echo", data, Limits())), number=300)
    print(
        f"  SandboxEngine.invoke (limits, fuel, deadline, checks; no database): {core * 1e6:8.1f} us"
        f"  ratio {core / bare:5.2f}x"
    )
    for label, sinks in (("audit sinks as configured", None), ("audit sinks off", [])):
        overrides = {} if sinks is None else {"METACORE": {"AUDIT_SINKS": sinks}}
        with override_settings(**overrides):
            reset_kernel()
            sandbox = get_kernel().sandbox
            assert sandbox.call("helpdesk", "echo", payload) == payload
            took = per_call(lambda: sandbox.call("helpdesk", "echo", payload), number=300)
        print(f"  SandboxService.call ({label}): {took * 1e6:8.1f} us  ratio {took / bare:5.2f}x (goal < 2x)")
    reset_kernel()


def db_query_call():
    import uuid

    from django.db import connection
    from django.test import override_settings

    from metacore.context import CallContext
    from metacore.kernel import get_kernel, reset_kernel
    from metacore.schema.naming import physical_table

    wasm = (EXAMPLE / "backend" / "helpdesk.wasm").read_bytes()
    bare = per_call(bare_call(wasm), number=300)
    tenant = str(uuid.uuid4())
    with override_settings(METACORE={"AUDIT_SINKS": []}):
        reset_kernel()
        kernel = get_kernel()
        tickets = kernel.registry.model_for("helpdesk", "tickets")
        tickets.objects.bulk_create(
            [
                tickets(organization_id=tenant, title=f"t{i}", status=("open", "resolved")[i % 2])
                for i in range(50)
            ]
        )
        sandbox, context = kernel.sandbox, CallContext(tenant=tenant)
        result = sandbox.call("helpdesk", "summary", {}, context)
        assert sorted((r["status"], r["n"]) for r in result["data"]["rows"]) == [
            ("open", 25),
            ("resolved", 25),
        ], result
        echo = per_call(lambda: sandbox.call("helpdesk", "echo", {}, context), number=200)
        summary = per_call(lambda: sandbox.call("helpdesk", "summary", {}, context), number=200)
    reset_kernel()
    table = connection.ops.quote_name(physical_table("helpdesk", "tickets", connection.vendor))
    org = uuid.UUID(tenant) if connection.vendor == "postgresql" else uuid.UUID(tenant).hex
    sql = f"SELECT status, count(*) AS n FROM {table} WHERE organization_id = %s GROUP BY status ORDER BY status"

    def bare_sql():
        with connection.cursor() as cursor:
            cursor.execute(sql, [org])
            return cursor.fetchall()

    raw = per_call(bare_sql, number=300)
    print(f"  bare SQL of the same query ({connection.vendor}):          {raw * 1e6:8.1f} us")
    print(
        f"  SandboxService.call echo, no db (sinks off):  {echo * 1e6:8.1f} us  ratio to bare wasmtime {echo / bare:5.2f}x"
    )
    print(
        f"  SandboxService.call with one db_query:        {summary * 1e6:8.1f} us  ratio to bare wasmtime"
        f" {summary / bare:5.2f}x; db_query import costs {(summary - echo) * 1e6:7.1f} us"
        f" ({(summary - echo) / raw:4.1f}x the bare SQL)"
    )


def instantiation():
    from wasmtime import Store

    from metacore.sandbox.service import get_engine

    engine = get_engine()
    compiled = engine.load((EXAMPLE / "backend" / "helpdesk.wasm").read_bytes())

    def instantiate():
        store = Store(engine.engine)
        store.set_limits(memory_size=64 * 1024 * 1024)
        store.set_fuel(2_000_000_000)
        store.set_epoch_deadline(100)
        compiled.pre.instantiate(store)

    took = per_call(instantiate, number=2000)
    print(f"  instantiation per call (store + limits + instance): {took * 1e6:6.1f} us (goal < 100 us)")


def big_module(functions=2600):
    """About 1 MiB of code in many distinct internal functions, with few exports (as a real
    addon module has: compiling is proportional to code, not to exports)."""
    from wasmtime import wat2wasm

    bodies = []
    for i in range(functions):
        ops = "".join(
            f"(local.set $x (i32.xor (i32.mul (local.get $x) (i32.const {i * 7 + k + 3})) (i32.const {k})))"
            for k in range(40)
        )
        bodies.append(f"(func $f{i} (param $x i32) (result i32) {ops} (local.get $x))")
    calls = "".join(f"(local.set $x (call $f{i} (local.get $x)))" for i in range(functions))
    wasm = wat2wasm(
        '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
        + "".join(bodies)
        + f'(func (export "run") (param $p i32) (param $x i32) (result i64) {calls} (i64.extend_i32_u (local.get $x))))'
    )
    return wasm


def disk_cache():
    from metacore.sandbox.engine import SandboxEngine

    wasm = big_module()
    compile_times, load_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(3):
            cache = Path(tmp) / f"cache{round_}"
            first = SandboxEngine(cache)
            start = time.perf_counter()
            assert not first.load(wasm).from_disk
            compile_times.append(time.perf_counter() - start)
            second = SandboxEngine(cache)  # a restarted process
            start = time.perf_counter()
            assert second.load(wasm).from_disk
            load_times.append(time.perf_counter() - start)
    compiled, loaded = statistics.median(compile_times), statistics.median(load_times)
    print(
        f"  {len(wasm) / 1048576:.2f} MiB module: compile {compiled * 1000:7.1f} ms, from disk cache"
        f" {loaded * 1000:6.2f} ms  ratio compile/cache {compiled / loaded:6.1f}x"
    )


def main():
    setup_django()
    round_trip()
    db_query_call()
    instantiation()
    disk_cache()


if __name__ == "__main__":
    main()
