"""Run the benchmarks: every `bench/<module>.py` with a `main()`, or the ones named."""
import importlib
import pkgutil
import sys
from pathlib import Path


def modules(selected):
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    unknown = sorted(set(selected) - set(found))
    if unknown:
        sys.exit(f"unknown bench module(s): {', '.join(unknown)} (have: {', '.join(found)})")
    return [name for name in found if not selected or name in selected]


def main(argv):
    failed = []
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
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
