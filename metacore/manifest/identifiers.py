"""Identifier, version and version-range rules, checked before any SQL is built.

Physical tables are `addon_<key>__<table>` on SQLite (and schema `addon_<key>` + table on
PostgreSQL), so the addon key may not contain `__` and key + table must keep that name
within PostgreSQL's 63-character identifier limit.
"""

from __future__ import annotations

import re

from django.db import models

from metacore.schema.naming import SCHEMA_PREFIX

MAX_IDENTIFIER = 63  # PostgreSQL NAMEDATALEN - 1
PHYSICAL_OVERHEAD = len(SCHEMA_PREFIX) + len("__")
MAX_ADDON_KEY = 40
RESERVED_ADDON_KEY = "host"  # metacore.schema.host.HOST_NAMESPACE: the host's own models

ADDON_KEY_RE = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]")
SQL_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")  # tables, columns, index names
MODEL_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
PERMISSION_KEY_RE = re.compile(r"[a-z0-9_][a-z0-9_-]*(\.[a-z0-9_*][a-z0-9_*-]*)*")
EXPORT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ACTION_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
# One comparator of a Masterminds-style range: ">=3.0.0", "<4", "^1.2", "~1.2.3", "1.x", "*".
_COMPARATOR_RE = re.compile(
    r"(?:\*|(?:>=|<=|>|<|=|==|!=|\^|~)?v?(?:\d+|[xX*])(?:\.(?:\d+|[xX*])){0,2}(?:-[0-9A-Za-z.-]+)?)"
)

# Column names a runtime Django model cannot carry as fields: they would shadow the model's
# own attributes (`pk`, `save`, `delete`...) or its manager.
RESERVED_COLUMN_NAMES = frozenset(
    {"pk", "objects"} | {name for name in dir(models.Model) if not name.startswith("_")}
) - {"id"}


def addon_key_problems(key: str) -> list[str]:
    if not ADDON_KEY_RE.fullmatch(key):
        return [
            f'invalid addon key "{key}": use lowercase letters, digits and "_", '
            "start with a letter, end with a letter or digit, at least 2 characters"
        ]
    if "__" in key:
        return [f'invalid addon key "{key}": "__" is reserved (it separates key and table)']
    if key == RESERVED_ADDON_KEY:
        return [f'addon key "{key}" is reserved: it qualifies the host\'s own models (`host.<model>`)']
    if len(key) > MAX_ADDON_KEY:
        return [f'addon key "{key}" is longer than {MAX_ADDON_KEY} characters']
    return []


def sql_name_problems(kind: str, name: str) -> list[str]:
    if not SQL_NAME_RE.fullmatch(name):
        return [
            f'invalid {kind} name "{name}": use lowercase letters, digits and "_", starting with a letter'
        ]
    if len(name) > MAX_IDENTIFIER:
        return [f'{kind} name "{name}" is longer than {MAX_IDENTIFIER} characters']
    return []


def column_name_problems(name: str) -> list[str]:
    problems = sql_name_problems("column", name)
    if problems:
        return problems
    if "__" in name or name.endswith("_"):
        return [f'invalid column name "{name}": no "__" and no trailing "_" (query lookups use them)']
    if name in RESERVED_COLUMN_NAMES:
        return [f'column name "{name}" is reserved (it would shadow a model attribute)']
    return []


def table_name_problems(addon_key: str, table: str) -> list[str]:
    problems = sql_name_problems("table", table)
    if problems:
        return problems
    if len(addon_key) + len(table) + PHYSICAL_OVERHEAD > MAX_IDENTIFIER:
        limit = MAX_IDENTIFIER - PHYSICAL_OVERHEAD - len(addon_key)
        return [
            f'table name "{table}" is too long: "{SCHEMA_PREFIX}{addon_key}__{table}" exceeds '
            f"{MAX_IDENTIFIER} characters (at most {limit} for this addon key)"
        ]
    return []


#: What upstream also accepts: MAJOR or MAJOR.MINOR (read as MAJOR.MINOR.0), with a "v".
LENIENT_VERSION_RE = re.compile(r"v?(0|[1-9]\d*)(\.(0|[1-9]\d*))?(?:-[0-9A-Za-z.-]+)?")


def lenient_version(version: str) -> bool:
    """A version upstream accepts that is not full semver ("1.0", "2", "v1.2")."""
    return not SEMVER_RE.fullmatch(version) and bool(LENIENT_VERSION_RE.fullmatch(version))


def semver_problems(version: str) -> list[str]:
    if not SEMVER_RE.fullmatch(version) and not lenient_version(version):
        return [f'"{version}" is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)']
    return []


def version_range_problems(text: str) -> list[str]:
    """A range as upstream writes them: comparators joined by blanks or commas, `||` between
    alternatives (`>=3.0.0 <4.0.0`, `^1.2`, `>=2.0.0, <3`)."""
    alternatives = [part.strip() for part in text.split("||")]
    if not text.strip() or any(not part for part in alternatives):
        return [f'"{text}" is not a version range (e.g. ">=3.0.0 <4.0.0")']
    for part in alternatives:
        for comparator in re.split(r"[\s,]+", part):
            if comparator and not _COMPARATOR_RE.fullmatch(comparator):
                return [
                    f'"{text}" is not a version range: cannot read "{comparator}" (e.g. ">=3.0.0 <4.0.0")'
                ]
    return []
