"""Table-driven rules of the installer: physical names, kernel ranges, template keys, SQL
statement splitting (no database needed)."""

import pytest

from metacore.errors import InvalidInput
from metacore.installer.bundle import template_key
from metacore.installer.compat import check_kernel_compatibility, to_specifier
from metacore.installer.sql_migrations import statements
from metacore.schema.naming import physical_index, physical_table


@pytest.mark.parametrize(
    "key, table, vendor, expected",
    [
        ("tickets", "tickets", "sqlite", "addon_tickets__tickets"),
        ("tickets", "tickets", "postgresql", 'addon_tickets"."tickets'),
        ("fiscal_mx", "cfdi_invoices", "sqlite", "addon_fiscal_mx__cfdi_invoices"),
        ("evil", "auth_user", "sqlite", "addon_evil__auth_user"),
    ],
)
def test_physical_table(key, table, vendor, expected):
    assert physical_table(key, table, vendor) == expected


@pytest.mark.parametrize(
    "key, table",
    [
        ("Tickets", "t"),
        ("a__b", "t"),
        ("k", "_t"),
        ("k", "t; DROP TABLE x"),
        ("k", 't"'),
        ("k", "x" * 64),
        ("9k", "t"),
    ],
)
def test_unsafe_names_are_refused_before_any_sql(key, table):
    with pytest.raises(InvalidInput):
        physical_table(key, table, "postgresql")


def test_index_names_are_prefixed_only_where_they_are_database_wide():
    assert physical_index("crm", "tickets_status_idx", "sqlite") == "addon_crm__tickets_status_idx"
    assert physical_index("crm", "tickets_status_idx", "postgresql") == "tickets_status_idx"


@pytest.mark.parametrize(
    "required, ok",
    [
        (None, True),
        ("", True),
        ("*", True),
        (">=3.0.0 <4.0.0", True),
        (">= 3.0.0, < 4.0.0", True),
        ("^3.0.0", True),
        ("3.x", True),
        ("3.0.0", True),
        (">=2.0.0 <3.0.0", True),
        (">=2.5.0 <3.0.0", True),
        ("^2.1", True),
        (">=4.0.0", False),
        ("^1.2.0", False),
        ("<2.0.0", False),
        (">=3.1.0 <4.0.0", False),
    ],
)
def test_kernel_ranges(required, ok):
    if ok:
        check_kernel_compatibility(required)
    else:
        with pytest.raises(InvalidInput, match="incompatible addon"):
            check_kernel_compatibility(required)


def test_unreadable_ranges_name_the_field():
    with pytest.raises(InvalidInput) as error:
        to_specifier("about three")
    assert "kernel" in error.value.errors


@pytest.mark.parametrize(
    "name, key",
    [
        ("template-crud-model", "template_crud_model"),
        ("template-minimal-0.1.0.tar.gz", "template_minimal"),
        ("My Addon", "my_addon"),
        ("42things", "addon_42things"),
    ],
)
def test_template_keys_come_from_the_bundle_name(name, key):
    assert template_key(name) == key


def test_sql_files_split_into_statements_without_comment_chunks():
    sql = """
    -- a comment
    CREATE TABLE t (note text DEFAULT 'a;b');
    /* block */
    CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
    -- trailing comment only
    """
    found = statements(sql)
    assert len(found) == 2
    assert "'a;b'" in found[0] and "$$ SELECT 1; $$" in found[1]


@pytest.mark.parametrize(
    "sql, allowed",
    [
        ("CREATE INDEX i ON t (a);", True),
        ("SET LOCAL statement_timeout = '5s';", True),
        ("SET CONSTRAINTS ALL IMMEDIATE;", True),
        ("-- note\nCOMMIT;", False),
        ("begin;", False),
        ("ROLLBACK;", False),
        ("SAVEPOINT x;", False),
        ("START TRANSACTION;", False),
        ("SET search_path TO public;", False),
        ("SET LOCAL search_path TO public;", False),
        ("SET ROLE postgres;", False),
        ("SET SESSION AUTHORIZATION postgres;", False),
        ("SET statement_timeout = 0;", False),
        ("RESET ALL;", False),
        ("DISCARD ALL;", False),
    ],
)
def test_bundle_sql_cannot_control_the_transaction_or_the_session(sql, allowed):
    from metacore.installer.bundle import Migration
    from metacore.installer.sql_migrations import check_statements

    migration = Migration("0001_x.sql", f"CREATE TABLE ok (id int);\n{sql}", "0" * 64)
    if allowed:
        check_statements(migration)
    else:
        with pytest.raises(InvalidInput, match="statement 2"):
            check_statements(migration)
