"""Names of the user-level permissions metacore creates for addon models.

Every addon permission is a Django `auth.Permission` on the `metacore.Installation` content
type with codename `<addon>.<table>.<action>`, so `user.has_perm("metacore.<codename>")`,
groups (roles) and django-guardian all work unchanged.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest

MODEL_ACTIONS = ("read", "create", "update", "delete")
APP_LABEL = "metacore"


def model_permission(addon_key: str, table: str, action: str) -> str:
    """Codename of a CRUD permission, e.g. `tickets.tickets.create`."""
    return f"{addon_key}.{table}.{action}"


def declared_permission(addon_key: str, key: str) -> str:
    """Codename of a permission a manifest declares in `permissions[]`/`rbac` (e.g.
    `tickets.approve` in addon `tickets` -> `tickets.tickets.approve`): always prefixed by
    the addon key so addons cannot grant each other's permissions."""
    return key if key.startswith(f"{addon_key}.") and key.count(".") >= 2 else f"{addon_key}.{key}"


def addon_permissions(manifest: "Manifest") -> dict[str, str]:
    """Codename -> human name of every permission an addon brings."""
    perms: dict[str, str] = {}
    for spec in manifest.models:
        for action in MODEL_ACTIONS:
            perms[model_permission(manifest.key, spec.table, action)] = (
                f"{manifest.name}: can {action} {spec.label or spec.table}"
            )
    for declared in manifest.permissions:
        perms[declared_permission(manifest.key, declared.key)] = (
            f"{manifest.name}: {declared.label or declared.key}"
        )
    return perms
