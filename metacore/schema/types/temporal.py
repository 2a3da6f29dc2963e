"""`date` and `datetime` (timestamps are stored with time zone, as `timestamptz`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from .base import ColumnType
from .registry import register

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from metacore.manifest.model import Column


def _utc_iso(value: Any) -> str | None:
    """As Django's SQLite converter, then `isoformat()`: a naive datetime (sqlite3 reads
    Django's `datetime` columns so) is UTC, given its offset without making an aware one; text
    (a host table's column declared otherwise) is parsed first."""
    if not isinstance(value, dt.datetime):
        if value is None or (value := parse_datetime(value)) is None:
            return None
    return value.isoformat() if value.tzinfo is not None else f"{value.isoformat()}+00:00"


def today() -> dt.date:
    """The current date in the active time zone (the `date` type's `now()` default)."""
    return timezone.localdate() if settings.USE_TZ else dt.date.today()


class _Temporal(ColumnType):
    ui_type = "datetime"
    form_type = cell_style = "date"
    filter_type = "date_range"
    default_fns = frozenset({"now"})


@register
class DateType(_Temporal):
    name = "date"
    field_class = models.DateField
    serializer_field_class = serializers.DateField
    openapi_schema = {"type": "string", "format": "date"}
    example = "2026-01-31"
    django_field_types = ("DateField",)
    widens_to = frozenset({"datetime"})

    def parse(self, raw: str) -> dt.date:
        try:
            value = parse_date(str(raw).strip())
        except ValueError:
            value = None
        if value is None:
            raise ValueError(f"{raw!r} is not a valid date (use YYYY-MM-DD)")
        return value

    def to_json(self, value: Any) -> Any:
        return None if value is None else value.isoformat()

    def default_fn_kwargs(self, default_fn: str, *, db_default: bool) -> dict[str, Any]:
        if default_fn != "now":
            return super().default_fn_kwargs(default_fn, db_default=db_default)
        return {"default": today}  # no portable SQL default for "today"


@register
class DateTimeType(_Temporal):
    name = "datetime"
    aliases = (
        "timestamp",
        "timestamptz",
        "timestamp with time zone",
        "timestamp without time zone",
    )
    field_class = models.DateTimeField
    serializer_field_class = serializers.DateTimeField
    openapi_schema = {"type": "string", "format": "date-time"}
    example = "2026-01-31T09:30:00Z"
    django_field_types = ("DateTimeField",)

    def parse(self, raw: str) -> dt.datetime:
        text = str(raw).strip()
        try:
            value = parse_datetime(text)
            if value is None and (day := parse_date(text)) is not None:
                value = dt.datetime.combine(day, dt.time())
        except ValueError:
            value = None
        if value is None:
            raise ValueError(f"{raw!r} is not a valid date-time (use ISO 8601)")
        if timezone.is_naive(value):
            value = value.replace(tzinfo=dt.UTC)
        return value

    def to_json(self, value: Any) -> Any:
        return None if value is None else value.isoformat()

    def json_from_db(self, connection: BaseDatabaseWrapper) -> Callable[[Any], Any] | None:
        # sqlite3 reads Django's `datetime` columns as naive datetimes in the connection's
        # time zone, which the ORM then makes aware; in UTC that is appending the offset.
        if connection.vendor != "sqlite" or type(self).to_json is not DateTimeType.to_json:
            return None
        return _utc_iso if settings.USE_TZ and connection.timezone is dt.UTC else None

    def default_fn_kwargs(self, default_fn: str, *, db_default: bool) -> dict[str, Any]:
        if default_fn != "now":
            return super().default_fn_kwargs(default_fn, db_default=db_default)
        kwargs: dict[str, Any] = {"default": timezone.now}
        if db_default:
            kwargs["db_default"] = Now()
        return kwargs

    def describe(self, column: Column | None = None) -> str:
        return "timestamptz"
