"""The metacore guest ABI (compatible with the upstream kernel's runtime/wasm).

Guest exports:
  memory                          its linear memory
  alloc(size i32) -> i32          a pointer to `size` writable bytes
  free(ptr i32, size i32)         optional; the host returns what it allocated and read
  <fn>(ptr i32, len i32) -> i64   the kernel's documented form, or
  <fn>(ptrLen i64) -> i64         the SDK's form, input packed like the result
Results are packed `ptr << 32 | len` (0 = empty), JSON in and out.

Every pointer/length coming from the guest is checked against the memory's current size
before the host touches it; a bad one raises BadPointer (a guest error).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from wasmtime import Func, FuncType, Memory, Module, Store, ValType

from metacore.sandbox.errors import BadPointer, BadResult, ModuleRejected

HOST_MODULE = "metacore_host"
WASI_MODULE = "wasi_snapshot_preview1"
U32 = 0xFFFFFFFF


def pack(ptr: int, length: int) -> int:
    """Host-side packing of (ptr, len) into the i64 the guest expects (as a signed value)."""
    value = ((ptr & U32) << 32) | (length & U32)
    return value - (1 << 64) if value >= 1 << 63 else value


def unpack(value: int) -> tuple[int, int]:
    value &= (1 << 64) - 1
    return value >> 32, value & U32


@dataclass(frozen=True)
class Convention:
    """How an export takes its input: `split` = (ptr i32, len i32), `packed` = (ptrLen i64)."""

    name: str

    def args(self, ptr: int, length: int) -> tuple[int, ...]:
        return (ptr, length) if self.name == "split" else (pack(ptr, length),)


SPLIT = Convention("split")
PACKED = Convention("packed")


def _types(types: Iterable[ValType]) -> list[str]:
    return [str(t) for t in types]


def convention_of(functype: FuncType) -> Convention | None:
    """Pick the calling convention from the export's own signature (None: not callable)."""
    params, results = _types(functype.params), _types(functype.results)
    if results != ["i64"]:
        return None
    if params == ["i32", "i32"]:
        return SPLIT
    if params == ["i64"]:
        return PACKED
    return None


class GuestMemory:
    """Bounds-checked access to one instance's linear memory, through its own alloc/free."""

    def __init__(
        self, store: Store, memory: Memory, alloc: Func | None = None, free: Func | None = None
    ) -> None:
        self.store = store
        self.memory = memory
        self.alloc_fn = alloc
        self.free_fn = free

    def size(self) -> int:
        return self.memory.data_len(self.store)

    def check(self, ptr: int, length: int, what: str = "buffer") -> None:
        if ptr < 0 or length < 0 or ptr + length > self.size():
            raise BadPointer(f"guest {what} at {ptr}+{length} is outside its {self.size()}-byte memory")

    def read(self, ptr: int, length: int, what: str = "buffer") -> bytes:
        if length == 0:
            return b""
        self.check(ptr, length, what)
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def read_text(self, ptr: int, length: int, what: str) -> str:
        raw = self.read(ptr, length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadResult(f"guest {what} is not valid UTF-8") from None

    def alloc(self, length: int) -> int:
        if self.alloc_fn is None:
            raise ModuleRejected("the module does not export alloc(i32) -> i32")
        ptr: int = self.alloc_fn(self.store, length) & U32
        self.check(ptr, length, f"alloc({length}) result")
        return ptr

    def write(self, data: bytes) -> int:
        """Copy `data` into a fresh guest allocation and return its pointer."""
        ptr = self.alloc(len(data))
        if data:
            self.memory.write(self.store, data, ptr)
        return ptr

    def give(self, data: bytes) -> int:
        """A host import's return value: `data` copied into the guest, packed (0 if empty)."""
        if not data:
            return 0
        return pack(self.write(data), len(data))

    def free(self, ptr: int, length: int) -> None:
        if self.free_fn is not None and length:
            self.free_fn(self.store, ptr, length)


class HostSignature(Protocol):
    @property
    def params(self) -> tuple[str, ...]: ...

    @property
    def results(self) -> tuple[str, ...]: ...


def check_imports(module: Module, host_functions: Mapping[str, "HostSignature"]) -> None:
    """Refuse a module importing anything outside `host_functions` (metacore_host) and WASI preview1."""
    for item in module.imports:
        name = f"{item.module}.{item.name}"
        if item.module == HOST_MODULE:
            expected = host_functions.get(item.name or "")
            if expected is None:
                raise ModuleRejected(f"module imports {name}, which metacore_host does not provide")
            if not isinstance(item.type, FuncType) or (
                _types(item.type.params),
                _types(item.type.results),
            ) != (list(expected.params), list(expected.results)):
                raise ModuleRejected(f"module imports {name} with the wrong signature")
        elif item.module != WASI_MODULE:
            raise ModuleRejected(
                f"module imports {name}: only {HOST_MODULE} and {WASI_MODULE} imports are allowed"
            )
