"""The catalog: installable bundles found in METACORE['BUNDLE_DIR'].

Each `.tar.gz`/`.tgz` file or directory holding a `manifest.json` is one entry. Bundles are
opened with the installer's own loader (`open_bundle`: safety checks, signature, manifest
validation) and checked for kernel compatibility, so `installable` tells whether an install
would get past loading; the result is cached per process until the file or the trust settings change.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from metacore import limits
from metacore.conf import metacore_settings
from metacore.errors import MetacoreError, NotFound
from metacore.installer.compat import check_kernel_compatibility

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest

log = logging.getLogger("metacore.installer")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class CatalogItem:
    path: Path
    key: str
    version: str
    raw_manifest: dict[str, Any]
    manifest: Manifest | None  # None when the bundle does not load
    problems: tuple[str, ...] = field(default=())

    @property
    def installable(self) -> bool:
        return self.manifest is not None and not self.problems


_cache: dict[Path, tuple[_Stamp, CatalogItem | None]] = {}


def catalog_dir() -> Path | None:
    configured = metacore_settings.BUNDLE_DIR
    return Path(configured) if configured else None


def list_items() -> list[CatalogItem]:
    """The newest version of each addon key in the catalog, sorted by key."""
    newest: dict[str, CatalogItem] = {}
    for item in _all_items():
        current = newest.get(item.key)
        if current is None or _version(item.version) > _version(current.version):
            newest[item.key] = item
    return [newest[key] for key in sorted(newest)]


def get_item(key: str, version: str | None = None) -> CatalogItem:
    candidates = [item for item in _all_items() if item.key == key]
    if version:
        candidates = [item for item in candidates if item.version == version]
    if not candidates:
        suffix = f" version {version}" if version else ""
        raise NotFound(f"addon {key!r}{suffix} is not in the catalog")
    return max(candidates, key=lambda item: _version(item.version))


def _all_items() -> list[CatalogItem]:
    root = catalog_dir()
    if root is None or not root.is_dir():
        return []
    items = []
    for path in sorted(root.iterdir()):
        is_bundle = (path.is_dir() and (path / "manifest.json").is_file()) or (
            path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)
        )
        if is_bundle:
            item = _load(path)
            if item is not None:
                items.append(item)
    return items


def _load(path: Path) -> CatalogItem | None:
    stamp = _stamp(path)
    cached = _cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    item = _inspect(path)
    _cache[path] = (stamp, item)
    return item


# (newest mtime, total size, (unsigned allowed, trusted keys)) of a bundle file or directory
_Stamp = tuple[int, int, tuple[bool, tuple[str, ...]]]


def _stamp(path: Path) -> _Stamp:
    """Changes when the bundle or the host's trust settings change."""
    trust = (
        bool(metacore_settings.ALLOW_UNSIGNED_BUNDLES),
        tuple(map(str, metacore_settings.TRUSTED_KEYS or ())),
    )
    if path.is_dir():
        stats = [p.stat() for p in path.rglob("*") if p.is_file()]
        return (max((s.st_mtime_ns for s in stats), default=0), sum(s.st_size for s in stats), trust)
    stat = path.stat()
    return (stat.st_mtime_ns, stat.st_size, trust)


def _inspect(path: Path) -> CatalogItem | None:
    from metacore.installer.bundle import discard_unused, open_bundle

    try:
        bundle = open_bundle(path)
    except MetacoreError as exc:
        raw = _raw_manifest(path)
        key = None if raw is None else _key_of(raw)
        if raw is None or not isinstance(key, str):
            log.warning("catalog: skipping %s: %s", path, exc.message)
            return None
        return CatalogItem(path, key, str(_version_of(raw)), raw, None, (exc.message,))
    discard_unused(bundle)  # inspected, not installed: the catalog keeps the manifest only
    problems: tuple[str, ...] = ()
    try:
        check_kernel_compatibility(bundle.manifest.kernel)
    except MetacoreError as exc:
        problems = (exc.message,)
    return CatalogItem(
        path, bundle.manifest.key, bundle.manifest.version, bundle.raw_manifest, bundle.manifest, problems
    )


def _raw_manifest(path: Path) -> dict[str, Any] | None:
    """manifest.json of a bundle that did not load, to show it in the catalog anyway."""
    try:
        if path.is_dir():
            data = (path / "manifest.json").read_bytes()
        else:
            with tarfile.open(path, "r:gz") as archive:
                member = next(
                    (m for m in archive if m.isfile() and m.name.removeprefix("./") == "manifest.json"), None
                )
                if member is None or member.size > 5 * 1024 * 1024:
                    return None
                data = archive.extractfile(member).read()  # type: ignore[union-attr]  # None only for non-files, refused above
        raw = limits.loads(data)
    except (OSError, tarfile.TarError, EOFError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _key_of(raw: dict[str, Any]) -> object:
    return raw.get("key") or (raw.get("metadata") or {}).get("key")


def _version_of(raw: dict[str, Any]) -> object:
    return raw.get("version") or (raw.get("metadata") or {}).get("version") or ""


def _version(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)
