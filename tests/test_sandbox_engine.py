"""The engine and the ABI against hostile guests: every failure is a typed error, the host
keeps serving, and no guest reaches memory, files or time it was not given."""

import json
import time

import pytest
import sandbox_guests as guests

from metacore.sandbox import abi
from metacore.sandbox.engine import Limits, SandboxEngine
from metacore.sandbox.errors import (
    BadPointer,
    BadResult,
    ExportNotAllowed,
    ModuleRejected,
    OutOfFuel,
    OutOfMemory,
    StackOverflow,
    Timeout,
    Trap,
)
from metacore.sandbox.imports import Invocation

LIMITS = Limits(memory_mb=4, timeout_ms=2_000, fuel=500_000_000)


@pytest.fixture
def engine(tmp_path):
    return SandboxEngine(tmp_path / "wasm-cache")


def run(engine, wasm, export, payload=b"{}", limits=LIMITS, invocation=None):
    return engine.invoke(engine.load(wasm), export, payload, limits, invocation)


def test_both_calling_conventions_echo(engine):
    wasm = guests.module(guests.ECHO)
    payload = json.dumps({"hello": "world", "n": [1, 2, 3]}).encode()
    assert run(engine, wasm, "echo", payload) == payload
    assert run(engine, wasm, "echo64", payload) == payload
    compiled = engine.load(wasm)
    assert compiled.convention("echo") is abi.SPLIT and compiled.convention("echo64") is abi.PACKED


def test_empty_result_is_zero(engine):
    wasm = guests.module('(func (export "nothing") (param i32 i32) (result i64) (i64.const 0))')
    assert run(engine, wasm, "nothing") == b""


def test_fresh_instance_per_call_no_state_leaks(engine):
    wasm = guests.module("""
  (global $calls (mut i32) (i32.const 0))
  (func (export "count") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 700) (i32.add (i32.const 48) (global.get $calls)))
    (call $pack (i32.const 700) (i32.const 1)))""")
    assert [run(engine, wasm, "count") for _ in range(3)] == [b"1", b"1", b"1"]


def test_infinite_loop_times_out_and_engine_keeps_serving(engine):
    wasm = guests.hostile()
    started = time.perf_counter()
    with pytest.raises(Timeout, match="100 ms"):
        run(engine, wasm, "spin", limits=Limits(memory_mb=4, timeout_ms=100, fuel=10**15))
    assert time.perf_counter() - started < 2
    assert run(engine, wasm, "echo", b'{"ok":1}') == b'{"ok":1}'


def test_fuel_runs_out(engine):
    with pytest.raises(OutOfFuel):
        run(engine, guests.hostile(), "spin", limits=Limits(memory_mb=4, timeout_ms=10_000, fuel=100_000))


def test_memory_bomb_hits_the_memory_limit(engine):
    with pytest.raises(OutOfMemory, match="8 MiB"):
        run(engine, guests.hostile(), "memory_bomb", limits=Limits(memory_mb=8, timeout_ms=2_000, fuel=10**9))


def test_declared_memory_above_the_limit_is_out_of_memory(engine):
    wasm = guests.module(
        """
  (memory (export "memory") 100)
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))""",
        prelude=False,
    )
    with pytest.raises(OutOfMemory):
        run(engine, wasm, "run")


def test_deep_recursion_is_a_stack_overflow(engine):
    with pytest.raises(StackOverflow):
        run(engine, guests.hostile(), "recurse")


def test_trap_and_division_by_zero(engine):
    with pytest.raises(Trap, match="unreachable"):
        run(engine, guests.hostile(), "trap")
    with pytest.raises(Trap, match="division by zero"):
        run(engine, guests.hostile(), "divide")


def test_huge_output_is_refused(engine):
    with pytest.raises(BadResult, match="cap"):
        run(engine, guests.hostile(), "huge")
    with pytest.raises(BadPointer):
        run(engine, guests.hostile(), "beyond")


def test_alloc_returning_garbage(engine):
    with pytest.raises(BadPointer, match="alloc"):
        run(engine, guests.garbage_alloc(), "run")


def test_module_without_alloc_cannot_take_input(engine):
    with pytest.raises(ModuleRejected, match="alloc"):
        run(engine, guests.without_alloc(), "run")


def test_forbidden_import_is_refused_by_name(engine):
    with pytest.raises(ModuleRejected, match=r"env\.system"):
        engine.load(guests.forbidden_import())


def test_unknown_host_function_is_refused_by_name(engine):
    wasm = guests.module("", extra_imports='(import "metacore_host" "spawn_shell" (func))')
    with pytest.raises(ModuleRejected, match="metacore_host.spawn_shell"):
        engine.load(wasm)


def test_not_wasm_is_refused(engine):
    with pytest.raises(ModuleRejected, match="not a valid WebAssembly module"):
        engine.load(b"\x00asm garbage")


def test_missing_or_badly_typed_export(engine):
    wasm = guests.module(guests.ECHO + '(func (export "wrong") (param i32) (result i32) (i32.const 0))')
    with pytest.raises(ExportNotAllowed, match="no export"):
        run(engine, wasm, "absent")
    with pytest.raises(ExportNotAllowed, match="signature"):
        run(engine, wasm, "wrong")


def test_free_is_called_for_input_and_result(engine):
    invocation = Invocation(addon_key="t", export="echo")
    assert run(engine, guests.with_free(), "echo", b'{"a":1}', invocation=invocation) == b'{"a":1}'
    assert [entry["message"] for entry in invocation.logs] == ["free", "free"]


def test_wasi_module_sees_no_file_env_or_preopen_and_logs_its_output(engine):
    invocation = Invocation(addon_key="t", export="snoop")
    assert run(engine, guests.wasi_snoop(), "snoop", invocation=invocation) == b""
    invocation.flush()
    assert {"stream": "stdout", "message": "hello from wasi"} in invocation.logs
    assert {"stream": "stderr", "message": "oops on stderr"} in invocation.logs


def test_out_of_bounds_log_pointer(engine):
    with pytest.raises(BadPointer, match="log message"):
        run(
            engine,
            guests.out_of_bounds_caller(),
            "bad_log",
            invocation=Invocation(addon_key="t", export="bad_log"),
        )


def test_disk_cache_is_reused_after_restart(tmp_path):
    wasm = guests.module(guests.ECHO)
    first = SandboxEngine(tmp_path / "cache")
    compiled = first.load(wasm)
    assert not compiled.from_disk
    files = list((tmp_path / "cache").glob("*.cwasm"))
    assert len(files) == 1 and compiled.sha256 in files[0].name
    second = SandboxEngine(tmp_path / "cache")  # a restarted process
    again = second.load(wasm)
    assert again.from_disk
    assert second.invoke(again, "echo", b"[1]", LIMITS) == b"[1]"


def test_corrupt_cache_entry_is_recompiled(tmp_path):
    wasm = guests.module(guests.ECHO)
    compiled = SandboxEngine(tmp_path / "cache").load(wasm)
    path = next((tmp_path / "cache").glob("*.cwasm"))
    path.write_bytes(b"not a compiled module")
    fresh = SandboxEngine(tmp_path / "cache").load(wasm)
    assert not fresh.from_disk and fresh.sha256 == compiled.sha256


def test_wasi_reactor_and_command_start_functions_run_first(engine):
    reactor = guests.module("""
  (global $ready (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $ready (i32.const 1)))
  (func (export "ready") (param i32 i32) (result i64)
    (i32.store8 (i32.const 700) (i32.add (i32.const 48) (global.get $ready)))
    (call $pack (i32.const 700) (i32.const 1)))""")
    assert run(engine, reactor, "ready") == b"1"
    command = guests.module(
        """
  (global $ready (mut i32) (i32.const 0))
  (func (export "_start") (global.set $ready (i32.const 1)) (call $exit (i32.const 0)))
  (func (export "ready") (param i32 i32) (result i64)
    (i32.store8 (i32.const 700) (i32.add (i32.const 48) (global.get $ready)))
    (call $pack (i32.const 700) (i32.const 1)))""",
        extra_imports='(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    assert run(engine, command, "ready", invocation=Invocation(addon_key="t", export="ready")) == b"1"
    failing = guests.module(
        '(func (export "_start") (call $exit (i32.const 3)))' + guests.ECHO,
        extra_imports='(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    from metacore.sandbox.errors import GuestExit

    with pytest.raises(GuestExit, match="status 3"):
        run(engine, failing, "echo")


def test_concurrent_calls_do_not_mix(engine):
    from concurrent.futures import ThreadPoolExecutor

    compiled = engine.load(guests.module(guests.ECHO))

    def echo(i):
        payload = json.dumps({"caller": i, "pad": "x" * (i * 37)}).encode()
        return engine.invoke(compiled, "echo" if i % 2 else "echo64", payload, LIMITS) == payload

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(echo, range(80)))


def test_manifest_limits_are_defaulted_and_clamped():
    from metacore.kernel import get_kernel
    from metacore.manifest.model import Backend, Manifest

    def limits(**backend):
        manifest = Manifest(format="flat", key="x", name="x", version="1.0.0", backend=Backend(**backend))
        return get_kernel().sandbox.limits_for(manifest)

    assert (limits().memory_mb, limits().timeout_ms) == (64, 10_000)
    assert limits(memory_limit_mb=-1).memory_mb == 64  # never "no limit"
    assert limits(memory_limit_mb=10**6).memory_mb == 4096
    assert limits(timeout_ms=0).timeout_ms == 10_000
    assert limits(memory_limit_mb=16, timeout_ms=250) == Limits(
        memory_mb=16, timeout_ms=250, fuel=limits().fuel
    )


def test_extra_memories_and_table_bombs_are_refused(engine):
    two_memories = guests.wat2wasm("""(module
  (memory (export "memory") 1) (memory $second 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0)))""")
    with pytest.raises(OutOfMemory):
        run(engine, two_memories, "run")
    table_bomb = guests.module("""
  (table $t 1 funcref)
  (func (export "grow") (param i32 i32) (result i64)
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 5000000)) (i32.const -1)) (then unreachable))
    (i64.const 0))""")
    with pytest.raises(Trap):
        run(engine, table_bomb, "grow")
