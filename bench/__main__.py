"""Run the benchmarks: every `bench/<module>.py` with a `main()`, or the ones named."""

import importlib
import pkgutil
import sys
from pathlib import Path


def modules(selected):
    """Bench modules: those defining a top-level `main()`. Helper modules (settings, ASGI
    apps of bench servers) are never imported here, as importing them configures Django."""
    here = Path(__file__).parent
    found = sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and "\ndef main(" in (here / f"{m.name}.py").read_text()
    )
    unknown = sorted(set(selected) - set(found))
    if unknown:
        sys.exit(f"unknown bench module(s): {', '.join(unknown)} (have: {', '.join(found)})")
    return [name for name in found if not selected or name in selected]


def main(argv):
    failed = []
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench.{name}", flush=True)
        try:
            module.main()
        except Exception as exc:  # one broken bench must not hide the others' numbers
            failed.append(name)
            print(f"bench.{name} failed: {exc!r}", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
