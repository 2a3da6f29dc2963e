"""Kernel compatibility of a manifest (`kernel` / `compatibility.requires[kernel]`).

Upstream writes npm-like ranges (`">=3.0.0 <4.0.0"`, `^3.1.0`, `3.x`); they are normalised
to PEP 440 specifiers (clauses separated by commas). This port speaks both manifest
formats, so it implements two kernel API levels: 3 (`metacore.KERNEL_VERSION`, the v3
format) and 2 (the flat format, which published bundles pin with `">=2.0.0 <3.0.0"`).
A range is compatible when it admits KERNEL_VERSION or a 2.x version.
"""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

import metacore
from metacore.errors import InvalidInput

LEGACY_MAJOR = 2


def to_specifier(required: str) -> SpecifierSet:
    clauses = []
    text = re.sub(r"(>=|<=|==|!=|~=|>|<|\^)\s+", r"\1", required.strip())
    for clause in re.split(r"[\s,]+", text):
        clause = re.sub(r"^(>=|<=|==|!=|~=|>|<|\^)?v", r"\1", clause)
        if not clause or clause in ("*", "x"):
            continue
        caret = re.fullmatch(r"\^(\d+)(?:\.(\d+))?(?:\.(\d+))?", clause)
        wildcard = re.fullmatch(r"(\d+)(?:\.(\d+))?\.[x*]", clause) or re.fullmatch(
            r"(\d+)\.[x*](?:\.[x*])?", clause
        )
        if caret:
            major = int(caret.group(1))
            clauses += [
                f">={caret.group(1)}.{caret.group(2) or 0}.{caret.group(3) or 0}",
                f"<{major + 1}.0.0",
            ]
        elif wildcard:
            clauses.append(f"=={'.'.join(g for g in wildcard.groups() if g)}.*")
        elif re.fullmatch(r"\d+(\.\d+)*", clause):
            clauses.append(f"=={clause}")
        else:
            clauses.append(clause)
    try:
        return SpecifierSet(",".join(clauses))
    except InvalidSpecifier:
        raise InvalidInput(
            f"kernel: cannot read the version range {required!r}",
            errors={"kernel": [f"invalid range {required!r}"]},
        ) from None


def check_kernel_compatibility(required: str | None) -> None:
    """InvalidInput unless this kernel can run a manifest requiring `required`."""
    if not required or not required.strip():
        return
    spec = to_specifier(required)
    candidates = [Version(metacore.KERNEL_VERSION), Version(f"{LEGACY_MAJOR}.0.0")]
    for clause in spec:
        try:
            version = Version(clause.version.rstrip(".*"))
        except InvalidVersion:
            continue
        if version.major == LEGACY_MAJOR:
            candidates.append(version)
    if any(spec.contains(v, prereleases=True) for v in candidates):
        return
    message = f"requires kernel {required!r}; this host runs kernel {metacore.KERNEL_VERSION} (and the 2.x flat-format API)"
    raise InvalidInput(f"incompatible addon: {message}", errors={"kernel": [message]})
