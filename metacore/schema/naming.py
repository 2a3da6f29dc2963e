"""Physical names of addon tables and indexes: the one place that decides them.

SQLite has one namespace, so an addon table is `addon_<key>__<table>`; PostgreSQL gives
every addon its own schema `addon_<key>` holding `<table>` as declared, so bundle SQL
migrations can name their tables plainly under `SET LOCAL search_path`. Either way two
addons declaring `tickets`, or an addon declaring `auth_user`, never meet each other or the
host's tables.

The prefix is unambiguous because keys never contain `__` and tables start with a letter.

An addon isolated `schema-per-tenant` has no shared tables: each organization gets its own
copy in the *space* `<key>_<org8>` (the first 8 hex digits of the organization's UUID, as
upstream names the schema `addon_<key>_<org8>`), and a copy is named exactly as the tables
of an addon whose key were the space: schema `addon_<space>` on PostgreSQL, tables
`addon_<space>__<table>` on SQLite.
"""

import re
import uuid

from metacore.errors import InvalidInput

SCHEMA_PREFIX = "addon_"  # of an addon's PostgreSQL schema, SQLite table names and capability targets
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def check_identifier(kind: str, value: str) -> str:
    """`value` if it is safe to put into SQL as a `kind` name, else InvalidInput."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value) or len(value) > MAX_IDENTIFIER:
        raise InvalidInput(
            f"{kind} {value!r} is not a valid identifier (lowercase letters, digits and _,"
            f" starting with a letter, at most {MAX_IDENTIFIER} characters)"
        )
    return value


def check_addon_key(addon_key: str) -> str:
    check_identifier("addon key", addon_key)
    if "__" in addon_key or len(schema_name(addon_key)) > MAX_IDENTIFIER:
        raise InvalidInput(f"addon key {addon_key!r} must not contain '__' and must fit a schema name")
    return addon_key


def schema_name(addon_key: str) -> str:
    """The PostgreSQL schema owning an addon's tables (also the capability target prefix)."""
    return f"{SCHEMA_PREFIX}{addon_key}"


def addon_of_schema(name: str) -> str:
    """The addon key in `addon_<key>` (any case); any other name as given."""
    return name[len(SCHEMA_PREFIX) :] if name.lower().startswith(SCHEMA_PREFIX) else name


ORGANIZATION_SUFFIX = 9  # "_" + 8 hex digits


def organization_uuid(organization: object, field: str = "organization") -> uuid.UUID:
    """An organization id as a UUID (what tenant resolvers return); InvalidInput naming
    `field` otherwise."""
    try:
        return organization if isinstance(organization, uuid.UUID) else uuid.UUID(str(organization))
    except ValueError:
        raise InvalidInput(
            f"{field} {str(organization)[:64]!r} is not an organization id (a UUID)",
            errors={field: ["must be a UUID"]},
        ) from None


def tenant_space(addon_key: str, organization: object) -> str:
    """The space of one organization's copy of a schema-per-tenant addon: `<key>_<org8>`."""
    return check_addon_key(f"{addon_key}_{organization_uuid(organization).hex[:8]}")


def check_tenant_addon_key(addon_key: str) -> str:
    """A schema-per-tenant addon's key must leave room for the organization suffix."""
    check_addon_key(addon_key)
    if len(schema_name(addon_key)) + ORGANIZATION_SUFFIX > MAX_IDENTIFIER:
        raise InvalidInput(
            f"addon key {addon_key!r} is too long for schema-per-tenant isolation"
            f" (schema addon_<key>_<org8> must fit {MAX_IDENTIFIER} characters)",
            errors={"key": ["too long for schema-per-tenant isolation"]},
        )
    return addon_key


def physical_table(addon_key: str, table: str, vendor: str) -> str:
    """Django `db_table` of an addon table on `vendor` (the quoted-schema form on PostgreSQL)."""
    check_addon_key(addon_key)
    check_identifier("table", table)
    if vendor == "postgresql":
        return f'{schema_name(addon_key)}"."{table}'
    return f"{schema_name(addon_key)}__{table}"


def physical_index(addon_key: str, name: str, vendor: str) -> str:
    """Name of a manifest-named index: SQLite index names are database-wide, so prefixed;
    PostgreSQL keeps the declared name inside the addon's schema (what bundle SQL expects)."""
    check_identifier("index", name)
    if vendor == "postgresql":
        return name
    return f"{schema_name(addon_key)}__{name}"
