"""Write validation for the store: one DRF `Serializer` class per runtime model, built from
the manifest columns (each column type gives its DRF field) and cached per model class.

A plain `Serializer` rather than a `ModelSerializer`: its field names are the manifest's
column names (a reference column stays `customer_id`, never Django's `customer`
relation), it runs no per-field queries, and uniqueness and references are checked by the
store service, tenant-aware, with the right status codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from rest_framework import serializers

from metacore.schema.types import get_type

if TYPE_CHECKING:
    from django.db.models import Model as DjangoModel

    from metacore.manifest.model import Column, Model

WriteSerializer = type[serializers.Serializer[Any]]

_CACHE: WeakKeyDictionary[type[DjangoModel], WriteSerializer] = WeakKeyDictionary()


def _field(column: Column) -> serializers.Field[Any, Any, Any, Any]:  # any column type's field
    """Required only when NOT NULL without a default: defaults are applied by the model."""
    has_default = column.has_default or column.default_fn is not None
    return get_type(column.type).serializer_field(
        column, required=column.required and not has_default, allow_null=not column.required
    )


def serializer_class(model_class: type[DjangoModel], spec: Model) -> WriteSerializer:
    """The validating serializer of a runtime model (built once per model class)."""
    cached = _CACHE.get(model_class)
    if cached is None:
        fields = {column.name: _field(column) for column in spec.user_columns}
        cached = type(f"{spec.table.title()}WriteSerializer", (serializers.Serializer,), fields)
        _CACHE[model_class] = cached
    return cached
