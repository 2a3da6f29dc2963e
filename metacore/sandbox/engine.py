"""One shared wasmtime Engine, a compiled-module cache (memory + disk), and hard limits.

- Compile once: modules are cached in memory by sha256 and serialised to
  DATA_DIR/wasm-cache keyed by sha256, the wasmtime version and the engine settings, so a
  restart deserialises instead of recompiling.
- A fresh Store and instance per invocation (InstancePre keeps that cheap): nothing leaks
  between calls, users or tenants.
- Limits per store: linear memory (store limits), fuel, and wall time via epoch
  interruption driven by one ticker thread.
Every failure becomes a SandboxError subclass; nothing a guest does escapes as a crash.
"""

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from wasmtime import (
    Config,
    Engine,
    ExitTrap,
    Func,
    FuncType,
    InstancePre,
    Linker,
    Memory,
    Module,
    Store,
    TrapCode,
    WasiConfig,
    WasmtimeError,
)
from wasmtime import (
    Trap as WasmTrap,
)

from metacore.sandbox import abi
from metacore.sandbox.errors import (
    BadResult,
    ExportNotAllowed,
    GuestExit,
    ModuleRejected,
    OutOfFuel,
    OutOfMemory,
    SandboxError,
    StackOverflow,
    Timeout,
    Trap,
)
from metacore.sandbox.imports import HOST_FUNCTIONS, Invocation, current_invocation, define_host_functions

if TYPE_CHECKING:
    from wasmtime._instance import InstanceExports

log = logging.getLogger("metacore.sandbox")

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
ENGINE_SETTINGS = "fuel+epoch"  # part of the disk-cache key: artifacts depend on engine config
TICK_MS = 10
WASM_PAGE = 64 * 1024
START_FUNCTIONS = ("_initialize", "_start")  # WASI reactors, then commands (TinyGo)


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 64
    timeout_ms: int = 10_000
    fuel: int = 2_000_000_000
    max_result_bytes: int = 8 * 1024 * 1024


@dataclass
class CompiledModule:
    sha256: str
    module: Module
    pre: InstancePre  # imports resolved once
    exports: dict[str, FuncType]  # name -> FuncType of every exported function
    uses_wasi: bool
    from_disk: bool = False
    # export -> its calling convention (None: not callable), read from the types once
    conventions: dict[str, abi.Convention | None] = field(init=False)

    def __post_init__(self) -> None:
        self.conventions = {name: abi.convention_of(functype) for name, functype in self.exports.items()}

    def convention(self, export: str) -> abi.Convention | None:
        return self.conventions.get(export)


@dataclass
class CallStats:
    fuel_used: int = 0
    duration_ms: float = 0.0
    memory_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class EpochTicker:
    """Advances the engine's epoch every TICK_MS while calls run; store deadlines are
    counted in ticks. After IDLE_S without calls the thread parks on an event, so an idle
    process pays nothing, and a busy one pays no wake-up per call (the event is set only
    when leaving idleness, under the same lock that parks the thread: no call can run
    untimed)."""

    IDLE_S = 1.0

    def __init__(self, engine: Engine, tick_ms: int = TICK_MS) -> None:
        self.engine = engine
        self.tick_ms = tick_ms
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active = 0
        self._busy = threading.Event()

    def enter(self) -> None:
        with self._lock:
            self._active += 1
            if not self._busy.is_set():
                self._busy.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="metacore-wasm-epoch", daemon=True)
                self._thread.start()

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    def _run(self) -> None:
        interval = self.tick_ms / 1000
        idle_ticks = 0
        while True:
            self._busy.wait()
            time.sleep(interval)
            self.engine.increment_epoch()
            idle_ticks = idle_ticks + 1 if self._active == 0 else 0
            if idle_ticks * interval >= self.IDLE_S:
                with self._lock:
                    if self._active == 0:
                        self._busy.clear()
                idle_ticks = 0

    def ticks_for(self, timeout_ms: int) -> int:
        return max(1, -(-timeout_ms // self.tick_ms)) + 1


class SandboxEngine:
    def __init__(self, cache_dir: Path | None) -> None:
        config = Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = Engine(config)
        self.linker = Linker(self.engine)
        self.linker.define_wasi()
        define_host_functions(self.linker)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.ticker = EpochTicker(self.engine)
        self._modules: dict[str, CompiledModule] = {}
        self._lock = threading.Lock()

    # -- compile / cache ------------------------------------------------------------------

    def cache_path(self, sha: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{sha}-wasmtime{WASMTIME_VERSION}-{ENGINE_SETTINGS}.cwasm"

    def load(self, wasm: bytes) -> CompiledModule:
        """The compiled module for these bytes: from memory, else disk, else compiled (and saved)."""
        sha = hashlib.sha256(wasm).hexdigest()
        cached = self._modules.get(sha)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._modules.get(sha)
            if cached is None:
                cached = self._compile_or_deserialize(sha, wasm)
                self._modules[sha] = cached
        return cached

    def forget(self, sha: str | None = None) -> None:
        """Drop in-memory modules (all, or one) — the disk cache stays."""
        with self._lock:
            if sha is None:
                self._modules.clear()
            else:
                self._modules.pop(sha, None)

    def _compile_or_deserialize(self, sha: str, wasm: bytes) -> CompiledModule:
        path = self.cache_path(sha)
        module = None
        if path is not None and path.is_file():
            try:
                module = Module.deserialize_file(self.engine, str(path))
            except WasmtimeError as exc:  # stale or corrupt artifact: recompile below
                log.warning("wasm cache entry %s unusable (%s); recompiling", path.name, exc)
        from_disk = module is not None
        if module is None:
            try:
                module = Module(self.engine, wasm)
            except WasmtimeError as exc:
                raise ModuleRejected(f"not a valid WebAssembly module: {_first_line(exc)}") from None
            if path is not None:
                self._write_cache(path, module.serialize())
        return self._prepare(sha, module, from_disk)

    def _write_cache(self, path: Path, data: bytes | bytearray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only data dir only costs recompiles
            log.warning("cannot write wasm cache %s: %s", path, exc)

    def _prepare(self, sha: str, module: Module, from_disk: bool) -> CompiledModule:
        abi.check_imports(module, HOST_FUNCTIONS)
        exports: dict[str, FuncType] = {}
        has_memory = False
        for export in module.exports:
            kind = export.type
            if isinstance(kind, FuncType):
                exports[export.name] = kind
            elif export.name == "memory":
                has_memory = True
        if not has_memory:
            raise ModuleRejected("the module does not export its memory as `memory`")
        try:
            pre = self.linker.instantiate_pre(module)
        except WasmtimeError as exc:
            raise ModuleRejected(f"cannot link the module: {_first_line(exc)}") from None
        uses_wasi = any(i.module == abi.WASI_MODULE for i in module.imports)
        return CompiledModule(sha, module, pre, exports, uses_wasi, from_disk)

    # -- invoke ---------------------------------------------------------------------------

    def invoke(
        self,
        compiled: CompiledModule,
        export: str,
        payload: bytes,
        limits: Limits,
        invocation: "Invocation | None" = None,
        stats: CallStats | None = None,
    ) -> bytes:
        """Run `export` on a fresh instance with `payload` as input; return the result bytes."""
        convention = compiled.convention(export)
        if convention is None:
            if export in compiled.exports:
                raise ExportNotAllowed(
                    f"export {export!r} has an unsupported signature: want (i32, i32) -> i64 or (i64) -> i64"
                )
            raise ExportNotAllowed(f"the module has no export {export!r}")
        store = Store(self.engine)
        store.set_limits(  # one linear memory (multi-memory would multiply the cap), bounded tables
            memory_size=limits.memory_mb * 1024 * 1024,
            memories=1,
            tables=8,
            table_elements=1_000_000,
            instances=4,
        )
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(self.ticker.ticks_for(limits.timeout_ms))
        if compiled.uses_wasi:
            store.set_wasi(_wasi_config(invocation))
        token = current_invocation.set(invocation)
        self.ticker.enter()
        started = time.perf_counter()
        memory: Memory | None = None
        try:
            instance = compiled.pre.instantiate(store)
            exports = instance.exports(store)
            memory = _export_of(exports, "memory", Memory)
            if memory is None:
                raise ModuleRejected("the module does not export its memory as `memory`")
            guest = abi.GuestMemory(
                store, memory, _export_of(exports, "alloc", Func), _export_of(exports, "free", Func)
            )
            for name in START_FUNCTIONS:
                if name in compiled.exports:
                    _run_start(cast(Func, exports[name]), store)  # compiled.exports lists functions only
                    break
            in_ptr = guest.write(payload)
            packed = cast(Func, exports[export])(
                store, *convention.args(in_ptr, len(payload))
            )  # a function: it has a convention
            out_ptr, out_len = abi.unpack(packed)
            if out_len > limits.max_result_bytes:
                raise BadResult(
                    f"{export} returned {out_len} bytes, over the {limits.max_result_bytes}-byte cap"
                )
            result = b"" if packed == 0 else guest.read(out_ptr, out_len, f"{export} result")
            guest.free(in_ptr, len(payload))
            if out_len:
                guest.free(out_ptr, out_len)
            return result
        except SandboxError:
            raise
        except ExitTrap as exc:
            raise GuestExit(f"{export}: guest exited with status {exc.code}") from None
        except (WasmTrap, WasmtimeError) as exc:
            raise _classify(exc, export, store, memory, limits) from None
        finally:
            self.ticker.leave()
            current_invocation.reset(token)
            if stats is not None:
                stats.duration_ms = (time.perf_counter() - started) * 1000
                stats.fuel_used = limits.fuel - _fuel_left(store)
                if memory is not None:
                    stats.memory_bytes = memory.data_len(store)


_Export = TypeVar("_Export")


def _export_of(exports: "InstanceExports", name: str, kind: type[_Export]) -> _Export | None:
    """The export `name` when it is a `kind` (an `alloc` that is not a function counts as missing)."""
    item = exports.get(name)
    return item if isinstance(item, kind) else None


def _run_start(func: Func, store: Store) -> None:
    try:
        func(store)
    except ExitTrap as exc:
        if exc.code != 0:
            raise


def _fuel_left(store: Store) -> int:
    try:
        return store.get_fuel()
    except WasmtimeError:
        return 0


def _wasi_config(invocation: "Invocation | None") -> WasiConfig:
    """No preopened directories, empty argv/env; stdout/stderr go to the addon's log."""
    config = WasiConfig()
    config.argv = []
    config.env = []
    if invocation is not None:
        config.stdout_custom = invocation.guest_stdout
        config.stderr_custom = invocation.guest_stderr
    else:
        config.stdout_custom = lambda data: None
        config.stderr_custom = lambda data: None
    return config


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def _classify(
    exc: WasmTrap | WasmtimeError, export: str, store: Store, memory: Memory | None, limits: Limits
) -> SandboxError:
    code = getattr(exc, "trap_code", None)
    text = str(exc)
    limit_bytes = limits.memory_mb * 1024 * 1024
    if code == TrapCode.INTERRUPT:
        return Timeout(f"{export} ran longer than its {limits.timeout_ms} ms limit and was stopped")
    if code == TrapCode.OUT_OF_FUEL or "all fuel consumed" in text:
        return OutOfFuel(f"{export} used up its fuel ({limits.fuel} units)")
    if code == TrapCode.STACK_OVERFLOW:
        return StackOverflow(f"{export} overflowed its call stack (runaway recursion?)")
    used = memory.data_len(store) if memory is not None else 0
    # Store limits make memory.grow return -1; a guest then traps. A trap with less than a
    # quarter of the limit left is reported as what it almost surely is: out of memory.
    if memory is not None and limit_bytes - used < max(WASM_PAGE, limit_bytes // 4):
        return OutOfMemory(
            f"{export} ran out of memory: {used / 1048576:.1f} of its {limits.memory_mb} MiB in use when it"
            f" failed ({_trap_reason(code, exc)})"
        )
    if memory is None and "memory" in text and ("limit" in text or "exceeds" in text):
        return OutOfMemory(f"{export} needs more than its {limits.memory_mb} MiB memory limit to start")
    return Trap(f"{export} trapped: {_trap_reason(code, exc)}")


def _trap_reason(code: TrapCode | None, exc: BaseException) -> str:
    return code.name.lower().replace("_", " ") if code is not None else _first_line(exc)
