"""Addon bundles: a directory or a `.tar.gz` holding `manifest.json`, optional
`migrations/*.sql`, `backend/*.wasm`, `frontend/**` and `README.md`.

`open_bundle(path)` is the one entry point. A bundle is untrusted input, so it is copied into
`DATA_DIR/bundles/<key>/<version>-<sha12>/` only after every entry passed the checks: no
absolute path, no `..`, no symlink, hard link or device, at most METACORE['MAX_BUNDLE_BYTES']
in total (counted on the uncompressed content, so a gzip bomb stops at the cap). Every file
gets its SHA-256 (`Bundle.files`), which signature verification compares with the signed
checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from metacore import limits
from metacore.conf import data_dir, metacore_settings
from metacore.installer.errors import BundleError
from metacore.installer.signing import read_detached_signature, verify_bundle, verify_tarball
from metacore.manifest.model import Manifest
from metacore.schema.naming import schema_name

MANIFEST_NAME = "manifest.json"
MAX_ENTRIES = 10_000
GZIP_MAGIC = b"\x1f\x8b"
TEMPLATE_MARK = "{{ADDON_KEY}}"
BundlePath = str | os.PathLike[str]  # a directory or a .tar.gz file


@dataclass(frozen=True)
class Migration:
    name: str  # file name, e.g. "0001_init.sql"
    sql: str
    checksum: str  # sha256 of the file as shipped


@dataclass(frozen=True)
class Bundle:
    source: Path  # what was opened
    root: Path  # the extracted copy under DATA_DIR
    manifest: Manifest
    raw_manifest: dict[str, Any]  # manifest.json as read (signature block included)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256, manifest.json included
    sha256: str = ""  # of the archive; for a directory, of its sorted "path sha256" listing
    template_values: dict[str, str] = field(default_factory=dict)

    def read(self, relpath: str) -> bytes:
        if relpath not in self.files:
            raise BundleError(self.source, f"no file {relpath!r}")
        return (self.root / relpath).read_bytes()

    def migrations(self) -> list[Migration]:
        """`migrations/*.sql` in name order, template placeholders filled like the manifest's."""
        found = []
        for relpath in sorted(self.files):
            path = PurePosixPath(relpath)
            if len(path.parts) == 2 and path.parts[0] == "migrations" and path.suffix == ".sql":
                sql = self.read(relpath).decode("utf-8")
                for name, value in self.template_values.items():
                    sql = sql.replace("{{" + name + "}}", value)
                found.append(Migration(path.name, sql, self.files[relpath]))
        return found


def open_bundle(path: BundlePath) -> Bundle:
    """Check, copy and parse the bundle at `path` (a directory or a .tar.gz file)."""
    source = Path(path)
    if not source.exists():
        raise BundleError(source, "no such file or directory")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=data_dir("bundles")))
    try:
        if source.is_dir():
            files, digest = _copy_directory(source, staging)
        else:
            files, digest = _extract_archive(source, staging)
        root = _bundle_root(source, staging, files)
        if root != staging:
            prefix = root.relative_to(staging).as_posix() + "/"
            files = {p.removeprefix(prefix): d for p, d in files.items() if p.startswith(prefix)}
        raw = _read_manifest(source, root)
        detached = read_detached_signature(source)
        if detached is not None:  # upstream's signature over the raw archive (docs/bundles.md)
            verify_tarball(digest, detached, files)
        else:
            verify_bundle(raw, files)  # signature, digest and per-file checksums (docs/bundles.md)
        values = _template_values(source, raw)
        manifest = _parse_manifest(source, raw, values)
        final = data_dir("bundles") / manifest.key / f"{manifest.version}-{digest[:12]}"
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                root.rename(final)
            except OSError:
                if not final.exists():  # not merely another process extracting the same bundle
                    raise
        return Bundle(source, final, manifest, raw, files, digest, values)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard_unused(bundle: Bundle) -> None:
    """Remove an extracted bundle no installation points at (a refused or failed install or
    upgrade, a dry-run plan, a catalog inspection), so `DATA_DIR/bundles` holds only what is
    installed."""
    from metacore.models import Installation

    root = Path(bundle.root)
    if Installation.objects.filter(bundle_path=str(root)).exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    try:
        root.parent.rmdir()  # the addon's folder, once its last version is gone
    except OSError:
        pass


def _check_name(source: Path, name: str) -> str:
    """A safe relative POSIX path for an archive entry, or BundleError."""
    if not name or "\x00" in name or "\\" in name:
        raise BundleError(source, f"entry {name!r}: invalid name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BundleError(source, f"entry {name!r}: absolute path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise BundleError(source, f"entry {name!r}: path traversal ('..')")
    return "/".join(parts)


def _cap() -> int:
    return int(metacore_settings.MAX_BUNDLE_BYTES)


def _extract_archive(source: Path, dest: Path) -> tuple[dict[str, str], str]:
    with source.open("rb") as handle:
        if handle.read(2) != GZIP_MAGIC:
            raise BundleError(source, "not a gzip-compressed archive (expected a .tar.gz or a directory)")
    if source.stat().st_size > _cap():
        raise BundleError(source, f"archive exceeds the size limit of {_cap()} bytes")
    digest = _sha256_file(source)
    files: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(source, "r:gz") as archive:
            for count, member in enumerate(archive, start=1):
                if count > MAX_ENTRIES:
                    raise BundleError(source, f"more than {MAX_ENTRIES} entries")
                name = _check_name(source, member.name)
                if member.issym() or member.islnk():
                    raise BundleError(source, f"entry {member.name!r}: links are not allowed")
                if member.isdir():
                    if name:
                        (dest / name).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise BundleError(
                        source, f"entry {member.name!r}: only regular files and directories are allowed"
                    )
                total += member.size
                if total > _cap():
                    raise BundleError(source, f"content exceeds the size limit of {_cap()} bytes")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                hasher = hashlib.sha256()
                with archive.extractfile(member) as stream, target.open("wb") as out:  # type: ignore[union-attr]  # None only for non-files, refused above
                    for chunk in iter(lambda: stream.read(1 << 16), b""):
                        hasher.update(chunk)
                        out.write(chunk)
                files[name] = hasher.hexdigest()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(source, f"not a readable .tar.gz archive ({exc})") from exc
    return files, digest


def _copy_directory(source: Path, dest: Path) -> tuple[dict[str, str], str]:
    files: dict[str, str] = {}
    total = 0
    for path in sorted(source.rglob("*")):
        relpath = path.relative_to(source).as_posix()
        if path.is_symlink():
            raise BundleError(source, f"entry {relpath!r}: links are not allowed")
        if path.is_dir():
            continue
        if not path.is_file():
            raise BundleError(source, f"entry {relpath!r}: only regular files and directories are allowed")
        if len(files) >= MAX_ENTRIES:
            raise BundleError(source, f"more than {MAX_ENTRIES} entries")
        total += path.stat().st_size
        if total > _cap():
            raise BundleError(source, f"content exceeds the size limit of {_cap()} bytes")
        target = dest / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        files[relpath] = _sha256_file(target)
    listing = "".join(f"{p} {d}\n" for p, d in sorted(files.items()))
    return files, hashlib.sha256(listing.encode()).hexdigest()


def _bundle_root(source: Path, staging: Path, files: dict[str, str]) -> Path:
    """The directory holding manifest.json: the top, or a single wrapping folder."""
    if MANIFEST_NAME in files:
        return staging
    tops = {p.split("/", 1)[0] for p in files}
    if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST_NAME}" in files:
        return staging / next(iter(tops))
    raise BundleError(source, f"no {MANIFEST_NAME} at the bundle root")


def _read_manifest(source: Path, root: Path) -> dict[str, Any]:
    try:
        raw = limits.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(source, f"{MANIFEST_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise BundleError(source, f"{MANIFEST_NAME} must hold a JSON object")
    return raw


def template_key(source: BundlePath) -> str:
    """The addon key a template bundle gets from its name: `template-crud-model` ->
    `template_crud_model` (a trailing `-<version>` and `.tar.gz` are dropped)."""
    name = Path(source).name
    for suffix in (".tar.gz", ".tgz"):
        name = name.removesuffix(suffix)
    name = re.sub(r"-\d+(\.\d+)*([-+.][0-9A-Za-z.]+)?$", "", name)
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return (
        key if re.match(r"^[a-z]", key) else schema_name(key)
    )  # `addon_<key>`: a key from a name that starts with no letter


def _template_values(source: Path, raw: dict[str, Any]) -> dict[str, str]:
    if TEMPLATE_MARK not in json.dumps(raw):
        return {}
    return {"ADDON_KEY": template_key(source)}


def _parse_manifest(source: Path, raw: dict[str, Any], values: dict[str, str]) -> Manifest:
    from metacore.manifest.parse import load_manifest

    return load_manifest(raw, template_values=values or None)


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
