"""Rebuild the example addons' wasm backends from their sources (`make examples`).

WebAssembly text is compiled with wasmtime's own `wat2wasm`, so no toolchain is needed
beyond the project's virtualenv. The built modules are committed, so `make run` installs
the examples without building anything.
"""

import sys
from pathlib import Path

from wasmtime import wat2wasm

EXAMPLES = Path(__file__).resolve().parent
TARGETS = {
    EXAMPLES / "helpdesk" / "src" / "helpdesk.wat": EXAMPLES / "helpdesk" / "backend" / "helpdesk.wasm",
}


def main() -> int:
    for source, target in TARGETS.items():
        wasm = wat2wasm(source.read_text())
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != wasm:
            target.write_bytes(wasm)
        print(f"{target.relative_to(EXAMPLES.parent)}: {len(wasm)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
