"""An addon's permissions as `auth.Permission` rows: created on install, carried over table
renames and pruned on upgrade, dropped with the addon's data. The installer calls these inside
its transaction, so a failed operation leaves the rows as they were."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from metacore.permissions.naming import MODEL_ACTIONS, addon_permissions, model_permission

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest


def _addon_rows(using: str) -> tuple[ContentType, QuerySet[Permission]]:
    from metacore.models import Installation

    content_type = ContentType.objects.db_manager(using).get_for_model(Installation)
    return content_type, Permission.objects.using(using).filter(content_type=content_type)


def create_addon_permissions(manifest: Manifest, using: str) -> list[str]:
    """Create the permissions `manifest` brings that do not exist yet; all their codenames."""
    content_type, rows = _addon_rows(using)
    wanted = addon_permissions(manifest)
    have = set(rows.filter(codename__in=list(wanted)).values_list("codename", flat=True))
    Permission.objects.using(using).bulk_create(
        [
            Permission(content_type=content_type, codename=c, name=n[:255])
            for c, n in wanted.items()
            if c not in have
        ]
    )
    return list(wanted)


def upgrade_addon_permissions(old: Manifest, new: Manifest, using: str) -> None:
    """Rename the grants of renamed tables (users and groups keep them), create the new
    version's permissions and delete those it no longer brings."""
    _, rows = _addon_rows(using)
    renames = permission_renames(old, new)
    for old_codename, new_codename in renames.items():
        rows.filter(codename=old_codename).update(codename=new_codename)
    create_addon_permissions(new, using)
    gone = {renames.get(p, p) for p in addon_permissions(old)} - set(addon_permissions(new))
    if gone:
        rows.filter(codename__in=gone).delete()


def drop_addon_permissions(addon_key: str, using: str) -> None:
    """Delete every permission of `addon_key` (uninstall with its data)."""
    _, rows = _addon_rows(using)
    rows.filter(codename__startswith=f"{addon_key}.").delete()


def permission_renames(old: Manifest, new: Manifest) -> dict[str, str]:
    """Old -> new codenames of the CRUD permissions of tables renamed with `renamed_from`."""
    old_tables = {m.table for m in old.models}
    return {
        model_permission(old.key, spec.renamed_from, action): model_permission(new.key, spec.table, action)
        for spec in new.models
        if spec.renamed_from in old_tables and spec.table not in old_tables
        for action in MODEL_ACTIONS
    }
