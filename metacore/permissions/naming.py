"""Names of the user-level permissions metacore creates for addon models.

Every addon permission is a Django `auth.Permission` on the `metacore.Installation` content
type with codename `<addon>.<table>.<action>`, so `user.has_perm("metacore.<codename>")`,
groups (roles) and django-guardian all work unchanged.
"""

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
