"""django-guardian glue: object permissions on addon rows.

Addon permissions live on the `metacore.Installation` content type, and guardian only stores
an object permission whose content type is the object's. Runtime addon models (classes
built by `metacore.schema.builder`) are recognised, and this resolver gives their rows the
Installation content type; then plain guardian works on addon rows:

    assign_perm("metacore.tickets.tickets.update", user, ticket_row)
    get_kernel().permissions.has(user, "tickets.tickets.update", ticket_row)  # True

Hosts set `GUARDIAN_GET_CONTENT_TYPE = "metacore.permissions.guardian.get_content_type"`
(system check metacore.W010 reminds them). Row ids are UUIDs, so rows never collide with
Installation ids under the shared content type.
"""

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model


def is_addon_model(model: type[Model]) -> bool:
    """Runtime addon classes carry their manifest Model (schema/builder.py)."""
    return getattr(model, "metacore_spec", None) is not None


def get_content_type(obj: Model | type[Model] | None) -> ContentType:
    """Guardian's content type of `obj`. `None` comes from guardian's own save-time check,
    whose generic foreign key cannot load an addon row through the Installation type: it
    gets the Installation type too, which is what the stored permission says."""
    from metacore.models import Installation

    model = obj if isinstance(obj, type) or obj is None else type(obj)
    if model is None or is_addon_model(model):
        return ContentType.objects.get_for_model(Installation)
    return ContentType.objects.get_for_model(model)
