"""Addon fixtures: the project's own (tests/data/addons, always present) and the upstream SDK
corpus (a conformance suite, present beside the repository in CI).

The corpus lives at $METACORE_SDK_FIXTURES (default `../shared/fixtures/metacore-sdk`). When it
is missing the conformance cases are skipped with one line in the summary, unless `CI` is set:
then the run fails (conftest.py). `manifest_features` names what a manifest uses, so a test can
prove the own fixtures cover every feature the corpus uses, in both formats.
"""

import json
import os
import re
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDK_ENV = "METACORE_SDK_FIXTURES"
SDK_FIXTURES = Path(os.environ.get(SDK_ENV) or ROOT.parent / "shared" / "fixtures" / "metacore-sdk")
HAVE_SDK = SDK_FIXTURES.is_dir()
SDK_INVALID = "sdk-testdata-v3_invalid"
OWN_FIXTURES = ROOT / "tests" / "data" / "addons"
OWN_INVALID = "v3-invalid"
CONFORMANCE = "conformance"
# Own flat fixtures are also served as .tar.gz bundles, built once per test session.
_TARBALLS = Path(tempfile.mkdtemp(prefix="metacore-test-bundles-"))


def read_raw(path: Path) -> dict:
    """The manifest.json of a bundle directory or .tar.gz, as parsed JSON."""
    if path.is_dir():
        return json.loads((path / "manifest.json").read_text())
    with tarfile.open(path) as archive:
        member = next(m for m in archive.getmembers() if m.name.rsplit("/", 1)[-1] == "manifest.json")
        return json.load(archive.extractfile(member))


def tarball(directory: Path) -> Path:
    """`directory` packed the way published bundles are (`<key>-<version>.tar.gz`)."""
    raw = read_raw(directory)
    target = _TARBALLS / f"{raw['key']}-{raw['version']}.tar.gz"
    if not target.exists():
        with tarfile.open(target, "w:gz") as archive:
            for path in sorted(directory.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return target


def own_bundles(invalid=False) -> list[Path]:
    """The project's fixtures: v3 directories, flat directories and the flat ones as tarballs."""
    found = []
    for directory in sorted(p for p in OWN_FIXTURES.iterdir() if (p / "manifest.json").is_file()):
        if (directory.name == OWN_INVALID) != invalid:
            continue
        found.append(directory)
        if not invalid and "apiVersion" not in read_raw(directory):
            found.append(tarball(directory))
    return found


def sdk_bundles(invalid=False) -> list[Path]:
    if not HAVE_SDK:
        return []
    if invalid:
        return [SDK_FIXTURES / "manifests" / SDK_INVALID]
    manifests = sorted(p for p in (SDK_FIXTURES / "manifests").iterdir() if p.name != SDK_INVALID)
    return manifests + sorted((SDK_FIXTURES / "bundles").glob("*.tar.gz"))


def bundle_params(invalid=False, where=lambda raw: True):
    """pytest params: own fixtures (always) then the corpus (marked `conformance`)."""
    own = [pytest.param(p, id=f"own:{p.name}") for p in own_bundles(invalid) if where(read_raw(p))]
    sdk = [
        pytest.param(p, id=f"sdk:{p.name}", marks=pytest.mark.conformance)
        for p in sdk_bundles(invalid)
        if where(read_raw(p))
    ]
    return own + sdk


# --- features ----------------------------------------------------------------------------

# Maps keyed by free-form names (a model, a hook, a language, a tool's property).
_FREE_KEYS = (".actions", ".hooks", ".i18n", ".input_schema.properties")
# Keys whose value is itself a feature (a column type, a capability kind, a delete rule...).
_VALUED = {
    "type",
    "kind",
    "on_delete",
    "policy",
    "isolation",
    "tenant_isolation",
    "icon_type",
    "runtime",
    "format",
    "layout",
    "method",
    "normalize",
}


def _walk(node, path, out):
    if isinstance(node, dict):
        free = path.endswith(_FREE_KEYS) and not path.endswith(".contributions.actions")
        for key, value in node.items():
            child = f"{path}.*" if free else f"{path}.{key}"
            if path.endswith(".i18n"):
                out.add(child)  # languages and their message keys are data, not features
                continue
            out.add(child)
            if key in _VALUED and isinstance(value, str):
                out.add(f"{child}={value}")
            if key == "default" and path.endswith("columns[]"):
                out.add(
                    f"{child}="
                    + (value if isinstance(value, str) and value.endswith("()") else type(value).__name__)
                )
            _walk(value, child, out)
    elif isinstance(node, list):
        for value in node:
            _walk(value, f"{path}[]", out)


def manifest_features(path: Path) -> set[str]:
    """What a bundle uses: `<format>:<json path>` for every key (list indexes and free-form
    names collapsed), `=<value>` for enumerated values, plus SQL migrations and templating."""
    raw = read_raw(path)
    fmt = "v3" if "apiVersion" in raw else "flat"
    found = set()
    _walk(raw, "", found)
    if re.search(r"\{\{[A-Z_]+\}\}", json.dumps(raw)):
        found.add("{{TEMPLATE}}")
    if path.is_dir():
        has_sql = any((path / "migrations").glob("*.sql"))
    else:
        with tarfile.open(path) as archive:
            has_sql = any(n.endswith(".sql") for n in archive.getnames())
        found.add("tar.gz")
    if has_sql:
        found.add("migrations/*.sql")
    return {f"{fmt}:{feature}" for feature in found}


def bundle_sets():
    """Two params for tests over a whole set: the own fixtures, then the corpus (`conformance`)."""
    return [
        pytest.param(own_bundles(), id="own"),
        pytest.param(sdk_bundles(), id="sdk", marks=pytest.mark.conformance),
    ]
