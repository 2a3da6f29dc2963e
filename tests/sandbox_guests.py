"""WAT guests for the sandbox tests, built with wasmtime.wat2wasm (no toolchain needed).

`module(body, imports=...)` wraps a body with the ABI prelude: a 2-page memory, a bump
`alloc` that grows memory, `$pack`, and `$split` (index of the first NUL byte), so a test
can pass several strings to a host import as `a\\0b\\0c`.
"""

from wasmtime import wat2wasm

HOST = '(import "metacore_host" "{name}" (func ${name} {sig}))'
SIGNATURES = {
    "log": "(param i32 i32)",
    "env_get": "(param i32 i32) (result i64)",
    "http_fetch": "(param i32 i32 i32 i32 i32 i32) (result i64)",
    "db_query": "(param i32 i32 i32 i32) (result i64)",
    "db_exec": "(param i32 i32 i32 i32) (result i64)",
    "event_emit": "(param i32 i32 i32 i32) (result i64)",
}

PRELUDE = """
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $p))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func $split (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
"""

ECHO = """
  (func (export "echo") (param $p i32) (param $n i32) (result i64) (call $pack (local.get $p) (local.get $n)))
  (func (export "echo64") (param $pn i64) (result i64) (local.get $pn))
"""

# Calls import NAME with the input split in two at the first NUL: NAME(a, b).
TWO_ARG_CALL = """
  (func (export "call_{name}") (param $p i32) (param $n i32) (result i64)
    (local $i i32)
    (local.set $i (call $split (local.get $p) (local.get $n)))
    (call ${name} (local.get $p) (local.get $i)
                  (i32.add (i32.add (local.get $p) (local.get $i)) (i32.const 1))
                  (i32.sub (i32.sub (local.get $n) (local.get $i)) (i32.const 1))))
"""

HTTP_CALL = """
  (func (export "call_http_fetch") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $q i32) (local $j i32)
    (local.set $i (call $split (local.get $p) (local.get $n)))
    (local.set $q (i32.add (i32.add (local.get $p) (local.get $i)) (i32.const 1)))
    (local.set $j (call $split (local.get $q) (i32.sub (i32.sub (local.get $n) (local.get $i)) (i32.const 1))))
    (call $http_fetch (local.get $p) (local.get $i) (local.get $q) (local.get $j)
      (i32.add (i32.add (local.get $q) (local.get $j)) (i32.const 1))
      (i32.sub (i32.sub (i32.sub (i32.sub (local.get $n) (local.get $i)) (i32.const 1)) (local.get $j)) (i32.const 1))))
"""

ENV_CALL = """
  (func (export "call_env_get") (param $p i32) (param $n i32) (result i64)
    (call $env_get (local.get $p) (local.get $n)))
  (func (export "call_log") (param $p i32) (param $n i32) (result i64)
    (call $log (local.get $p) (local.get $n)) (i64.const 0))
"""


def module(body="", imports=(), *, prelude=True, extra_imports=""):
    lines = [HOST.format(name=name, sig=SIGNATURES[name]) for name in imports]
    return wat2wasm(
        "(module\n" + "\n".join(lines) + extra_imports + (PRELUDE if prelude else "") + body + "\n)"
    )


def host_caller():
    """A guest exporting `call_<import>` for every metacore_host import."""
    body = (
        ENV_CALL
        + HTTP_CALL
        + "".join(TWO_ARG_CALL.format(name=n) for n in ("db_query", "db_exec", "event_emit"))
    )
    return module(ECHO + body, imports=SIGNATURES)


def out_of_bounds_caller():
    """`bad_<import>` exports that hand every import a pointer far outside memory."""
    return module(_bad_calls(), imports=SIGNATURES)


def returning(text: bytes, name="run"):
    """A guest whose export returns `text` (placed in a data segment at 512)."""
    escaped = "".join(f"\\{b:02x}" for b in text)
    return module(f"""
  (data (i32.const 512) "{escaped}")
  (func (export "{name}") (param i32 i32) (result i64) (call $pack (i32.const 512) (i32.const {len(text)})))
""")


HOSTILE = {
    "spin": '(func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))',
    "memory_bomb": """
  (func (export "memory_bomb") (param i32 i32) (result i64)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)""",
    "recurse": """
  (func $down (param $d i32) (result i32) (i32.add (call $down (i32.add (local.get $d) (i32.const 1))) (i32.const 1)))
  (func (export "recurse") (param i32 i32) (result i64) (drop (call $down (i32.const 0))) (i64.const 0))""",
    "huge": '(func (export "huge") (param i32 i32) (result i64) (call $pack (i32.const 0) (i32.const 0x7fffffff)))',
    "beyond": '(func (export "beyond") (param i32 i32) (result i64) (call $pack (i32.const 65536) (i32.const 1048576)))',
    "trap": '(func (export "trap") (param i32 i32) (result i64) unreachable)',
    "divide": '(func (export "divide") (param i32 i32) (result i64) (i64.extend_i32_u (i32.div_u (i32.const 1) (i32.const 0))))',
}


def hostile():
    return module(ECHO + "".join(HOSTILE.values()))


def garbage_alloc():
    return module(
        """
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const -16))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))
""",
        prelude=False,
    )


def without_alloc():
    return module(
        """
  (memory (export "memory") 1)
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))
""",
        prelude=False,
    )


def forbidden_import():
    return module(
        '(func (export "run") (param i32 i32) (result i64) (i64.const 0))',
        extra_imports='(import "env" "system" (func $system (param i32)))',
    )


def with_free():
    """Logs `free <size>` for every free() the host makes (fresh instance per call)."""
    return module(
        ECHO
        + """
  (data (i32.const 600) "free")
  (func (export "free") (param $p i32) (param $n i32) (call $log (i32.const 600) (i32.const 4)))
""",
        imports=["log"],
    )


WASI_SNOOP = """
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
"""


def wasi_snoop():
    """Writes to stdout/stderr, then traps if any preopen, any env var, or /etc/passwd
    (through directory fds 3..5) is reachable; returns 0 (empty) when all is walled off."""
    return module(
        """
  (data (i32.const 100) "/etc/passwd")
  (data (i32.const 200) "hello from wasi\\n")
  (data (i32.const 300) "oops on stderr\\n")
  (func $open (param $fd i32) (result i32)
    (call $path_open (local.get $fd) (i32.const 0) (i32.const 100) (i32.const 11) (i32.const 0)
      (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 50)))
  (func (export "snoop") (param i32 i32) (result i64)
    (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 300)) (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eqz (call $prestat (i32.const 3) (i32.const 40))) (then unreachable))
    (if (i32.eqz (call $open (i32.const 3))) (then unreachable))
    (if (i32.eqz (call $open (i32.const 4))) (then unreachable))
    (if (i32.eqz (call $open (i32.const 5))) (then unreachable))
    (drop (call $env_sizes (i32.const 60) (i32.const 64)))
    (if (i32.ne (i32.load (i32.const 60)) (i32.const 0)) (then unreachable))
    (i64.const 0))
""",
        extra_imports=WASI_SNOOP,
    )


def probe():
    """`echo`, `call_<import>` and `bad_<import>` exports in one module (host import tests)."""
    calls = (
        ENV_CALL
        + HTTP_CALL
        + "".join(TWO_ARG_CALL.format(name=n) for n in ("db_query", "db_exec", "event_emit"))
    )
    return module(ECHO + calls + _bad_calls(), imports=SIGNATURES)


def _bad_calls():
    bad = 0x7FFF0000
    return f"""
  (func (export "bad_log") (param i32 i32) (result i64) (call $log (i32.const {bad}) (i32.const 16)) (i64.const 0))
  (func (export "bad_env_get") (param i32 i32) (result i64) (call $env_get (i32.const {bad}) (i32.const 16)))
  (func (export "bad_http_fetch") (param i32 i32) (result i64)
    (call $http_fetch (i32.const {bad}) (i32.const 16) (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 0)))
  (func (export "bad_db_query") (param i32 i32) (result i64)
    (call $db_query (i32.const 0) (i32.const 8) (i32.const {bad}) (i32.const 16)))
  (func (export "bad_db_exec") (param i32 i32) (result i64)
    (call $db_exec (i32.const {bad}) (i32.const -1) (i32.const 0) (i32.const 0)))
  (func (export "bad_event_emit") (param i32 i32) (result i64)
    (call $event_emit (i32.const 0) (i32.const 4) (i32.const {bad}) (i32.const 16)))
"""


PROBE_EXPORTS = [
    "echo",
    "call_log",
    "call_env_get",
    "call_http_fetch",
    "call_db_query",
    "call_db_exec",
    "call_event_emit",
    "bad_log",
    "bad_env_get",
    "bad_http_fetch",
    "bad_db_query",
    "bad_db_exec",
    "bad_event_emit",
]


def install_probe_addon(tmp_path, key, **manifest_changes):
    """Install the helpdesk example as addon `key` with the `probe()` guest as its backend
    (every `PROBE_EXPORTS` callable), `manifest_changes` applied to its manifest."""
    import json
    import shutil
    from pathlib import Path

    from metacore.kernel import get_kernel

    target = tmp_path / key
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "helpdesk", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(
        key=key,
        name=key.title(),
        hooks={},
        actions={},
        backend={
            "runtime": "wasm",
            "entry": "backend/helpdesk.wasm",
            "exports": PROBE_EXPORTS,
            "memory_limit_mb": 8,
            "timeout_ms": 2000,
        },
    )
    settings = manifest_changes.pop("install_settings", None)
    manifest.update(manifest_changes)
    (target / "backend" / "helpdesk.wasm").write_bytes(probe())
    (target / "manifest.json").write_text(json.dumps(manifest))
    return get_kernel().installer.install(target, settings=settings)
