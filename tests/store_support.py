"""Helpers for the dynamic store tests: install an addon for a test module, users with
tenants and grants, an API client, and sample values for any column type."""

import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from metacore.kernel import get_kernel
from metacore.models import AuditRecord, InstallJournal, TenantMembership
from metacore.schema.types import get_type

ORG_A = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
ORG_B = uuid.UUID("bbbbbbbb-0000-4000-8000-000000000002")


@contextmanager
def installed_addon(django_db_blocker, path):
    """Install `path` with the real installer for the duration (committed, as a module
    fixture), then uninstall with its data and drop the bookkeeping rows it left."""
    with django_db_blocker.unblock():
        result = get_kernel().installer.install(path)
    try:
        yield result
    finally:
        with django_db_blocker.unblock():
            get_kernel().installer.uninstall(result.key, drop_data=True)
            InstallJournal.objects.filter(addon_key=result.key).delete()
            AuditRecord.objects.filter(addon=result.key).delete()


def make_user(username, org=None, *, superuser=False, perms=()):
    user = User.objects.create_user(
        username, password=None, is_superuser=superuser, is_staff=superuser
    )  # no hashing: fast
    if org is not None:
        TenantMembership.objects.create(user=user, organization_id=org)
    if perms:
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="metacore", codename__in=perms)
        )
    return User.objects.get(pk=user.pk)


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.content[:1000])
    body = response.json()
    assert body["success"] is True, body
    return body


def fails(response, status):
    assert response.status_code == status, (response.status_code, response.content[:1000])
    body = response.json()
    assert body["success"] is False and body["message"], body
    assert isinstance(body["errors"], dict), body
    return body


def sample(column, i):
    """A JSON value for row `i` (0..25) of `column`: increasing with `i` for ordered types;
    the text of row 1 is the only one containing "b1"."""
    name = get_type(column.type).name
    if name in ("string", "text"):
        return f"v{chr(ord('a') + i)}{i}z"
    return {
        "uuid": lambda: str(uuid.UUID(f"{(i + 1) * 16:08x}-1111-4111-8111-111111111111")),
        "int": lambda: (i + 1) * 10,
        "bigint": lambda: (i + 1) * 10_000_000_000,
        "float": lambda: i + 1.5,
        "decimal": lambda: str(Decimal("1.25") * (i + 1)),
        "bool": lambda: i % 2 == 0,
        "date": lambda: (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
        "datetime": lambda: (datetime(2024, 1, 1, 10, 30, tzinfo=UTC) + timedelta(days=i)).isoformat(),
        "json": lambda: {"k": i, "tags": [f"t{i}"]},
    }[name]()


def as_query(column, value):
    """`value` written as a query-string operand for `column`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def same(column, a, b):
    """Do two JSON values of `column` mean the same thing (decimals '1.2500' == '1.25' ...)?"""
    if a is None or b is None:
        return a is b
    ctype = get_type(column.type)
    if ctype.name in ("json", "bool", "float", "int", "bigint"):
        return a == b
    return ctype.parse(str(a)) == ctype.parse(str(b))


def ledger_manifest(*columns):
    """A v3 `ledger` addon: one tenant-scoped `entries` table with `columns` after its id and
    organization_id."""
    return {
        "apiVersion": "asteby.com/v3",
        "kind": "Addon",
        "metadata": {"key": "ledger", "name": "Ledger", "version": "1.0.0"},
        "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
        "models": [
            {
                "key": "Entries",
                "table": "entries",
                "label": "Entries",
                "columns": [
                    {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                    {"name": "organization_id", "type": "uuid", "not_null": True},
                    *columns,
                ],
            }
        ],
    }
