"""Write validation for the store: one DRF `Serializer` class per runtime model, built from
the manifest columns (type, required, size, precision) and cached per model class.

A plain `Serializer` rather than a `ModelSerializer`: its field names are the manifest's
column names (a reference column stays `customer_id`, never Django's `customer`
relation), it runs no per-field queries, and uniqueness and references are checked by the
store service, tenant-aware, with the right status codes.
"""

from __future__ import annotations

import json
from weakref import WeakKeyDictionary

from rest_framework import serializers

from metacore.schema.types import get_type
from metacore.schema.types.numeric import BigIntType, IntType

_CACHE: WeakKeyDictionary = WeakKeyDictionary()


def _text(column, **kwargs):
    return serializers.CharField(allow_blank=True, trim_whitespace=False, **kwargs)


def _string(column, **kwargs):
    return _text(column, max_length=get_type("string").size(column), **kwargs)


def _integer(bounds):
    low, high = bounds
    return lambda column, **kwargs: serializers.IntegerField(min_value=low, max_value=high, **kwargs)


def _decimal(column, **kwargs):
    precision, scale = get_type("decimal").precision_scale(column)
    return serializers.DecimalField(max_digits=precision, decimal_places=scale, **kwargs)


def _no_nul(value):
    """PostgreSQL cannot store U+0000 in jsonb (SQLite can): refused on both, alike."""
    if "\\u0000" in json.dumps(value):
        raise serializers.ValidationError("must not contain NUL characters")


def _json(column, **kwargs):
    return serializers.JSONField(validators=[_no_nul], **kwargs)


def _plain(field_class):
    return lambda column, **kwargs: field_class(**kwargs)


#: canonical column type -> DRF field factory `(column, **kwargs)`.
FIELD_FACTORIES = {
    "string": _string,
    "text": _text,
    "uuid": _plain(serializers.UUIDField),
    "int": _integer(IntType.bounds),
    "bigint": _integer(BigIntType.bounds),
    "float": _plain(serializers.FloatField),
    "decimal": _decimal,
    "bool": _plain(serializers.BooleanField),
    "date": _plain(serializers.DateField),
    "datetime": _plain(serializers.DateTimeField),
    "json": _json,
}


def _field(column):
    """Required only when NOT NULL without a default: defaults are applied by the model."""
    has_default = column.has_default or column.default_fn is not None
    return FIELD_FACTORIES[get_type(column.type).name](
        column, required=column.required and not has_default, allow_null=not column.required
    )


def serializer_class(model_class, spec):
    """The validating serializer of a runtime model (built once per model class)."""
    cached = _CACHE.get(model_class)
    if cached is None:
        fields = {column.name: _field(column) for column in spec.user_columns}
        cached = type(f"{spec.table.title()}WriteSerializer", (serializers.Serializer,), fields)
        _CACHE[model_class] = cached
    return cached
