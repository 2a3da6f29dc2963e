"""Read the manifest.json of a bundle path without extracting anything.

A path is a bundle directory, a manifest file, or a `.tar.gz`/`.tgz` bundle whose
`manifest.json` sits at the root (or inside one top-level folder). Only that one member is
read, through `tarfile`, with the bundle size cap.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from metacore.conf import metacore_settings
from metacore.errors import InvalidInput

MANIFEST_NAME = "manifest.json"


def read_manifest_bytes(path: str | Path) -> bytes:
    path = Path(path)
    limit = metacore_settings.MAX_BUNDLE_BYTES
    if path.is_dir():
        path = path / MANIFEST_NAME
        if not path.is_file():
            raise InvalidInput(f"{path.parent}: no {MANIFEST_NAME} in this bundle directory")
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    if path.name.endswith((".tar.gz", ".tgz")):
        return _from_tarball(path, limit)
    if path.stat().st_size > limit:
        raise InvalidInput(f"{path}: larger than MAX_BUNDLE_BYTES ({limit})")
    return path.read_bytes()


def _from_tarball(path: Path, limit: int) -> bytes:
    try:
        with tarfile.open(path, "r:gz") as bundle:
            member = _manifest_member(bundle.getmembers())
            if member is None:
                raise InvalidInput(f"{path}: no {MANIFEST_NAME} at the top of the bundle")
            if not member.isfile():
                raise InvalidInput(f"{path}: {member.name} is not a regular file")
            if member.size > limit:
                raise InvalidInput(f"{path}: {member.name} is larger than MAX_BUNDLE_BYTES ({limit})")
            return bundle.extractfile(member).read()  # type: ignore[union-attr]  # None only for non-files, refused above
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{path}: not a readable .tar.gz bundle ({exc})") from None


def _manifest_member(members: list[tarfile.TarInfo]) -> tarfile.TarInfo | None:
    by_parts = {tuple(p for p in m.name.split("/") if p not in ("", ".")): m for m in members}
    if (MANIFEST_NAME,) in by_parts:
        return by_parts[(MANIFEST_NAME,)]
    nested = [m for parts, m in by_parts.items() if len(parts) == 2 and parts[1] == MANIFEST_NAME]
    return nested[0] if len(nested) == 1 else None
