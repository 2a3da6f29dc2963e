"""Branch coverage per metacore package, from the .coverage file `make test` leaves.

coverage.py reports per file; the floor and the review questions are per package
("are the security packages' error paths tested?"), so this sums its JSON report per package.
"""

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from coverage import Coverage


def package_of(path: str) -> str:
    parts = Path(path).parts
    inner = parts[parts.index("metacore") + 1 :]
    return f"metacore.{inner[0]}" if len(inner) > 1 else "metacore (modules)"


def main() -> int:
    cov = Coverage()
    cov.load()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cov.json_report(outfile=out.name, ignore_errors=True)
        files = json.loads(Path(out.name).read_text())["files"]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # package -> [covered, coverable]
    for path, report in files.items():
        summary = report["summary"]
        totals[package_of(path)][0] += summary["covered_lines"] + summary.get("covered_branches", 0)
        totals[package_of(path)][1] += summary["num_statements"] + summary.get("num_branches", 0)
    width = max(map(len, totals))
    print(f"{'package':<{width}}  branch cover")
    for package, (covered, coverable) in sorted(totals.items()):
        print(f"{package:<{width}}  {100 * covered / max(coverable, 1):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
