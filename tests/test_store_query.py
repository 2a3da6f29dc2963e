"""The list query language on its own: parameters -> ListQuery (no database)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Q
from django.http import QueryDict

from metacore.errors import InvalidInput
from metacore.manifest.columns import system_columns
from metacore.manifest.model import Column, Model
from metacore.store.query import parse_list_query, split_operator

leading, trailing = system_columns(True, True)
MODEL = Model(
    key="Tickets",
    table="tickets",
    label="Tickets",
    org_scoped=True,
    soft_delete=True,
    columns=(
        *leading,
        Column(name="title", type="string", size=80),
        Column(name="qty", type="int"),
        Column(name="amount", type="decimal"),
        Column(name="due", type="datetime"),
        Column(name="done", type="bool"),
        Column(name="tags", type="json"),
        Column(name="owner_id", type="uuid"),
        *trailing,
    ),
)


def parse(query):
    return parse_list_query(MODEL, QueryDict(query))


def error(query):
    with pytest.raises(InvalidInput) as caught:
        parse(query)
    return caught.value.errors


def test_defaults():
    q = parse("")
    assert (q.page, q.per_page, q.ordering, q.where) == (1, 20, ("-created_at", "id"), Q())


def test_per_page_is_clamped_and_page_offsets(settings):
    q = parse("page=3&per_page=1000")
    assert (q.per_page, q.offset) == (200, 400)
    settings.METACORE = {**settings.METACORE, "MAX_PER_PAGE": 50, "DEFAULT_PER_PAGE": 10}
    assert parse("per_page=1000").per_page == 50 and parse("").per_page == 10


@pytest.mark.parametrize(
    "query, ordering",
    [
        ("sortBy=title", ("title", "id")),
        ("sortBy=-title,qty", ("-title", "qty", "id")),
        ("sortBy=title,qty&order=desc", ("-title", "-qty", "id")),
        ("sortBy=title,qty&order=desc,asc", ("-title", "qty", "id")),
        ("sortBy=id&order=DESC", ("-id",)),
    ],
)
def test_sorting(query, ordering):
    assert parse(query).ordering == ordering


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("gt:5", ("gt", "5")),
        ("5", ("eq", "5")),
        ("2024-01-01T10:00:00+00:00", ("eq", "2024-01-01T10:00:00+00:00")),
        ("eq:https://x.test/a", ("eq", "https://x.test/a")),
        ("https://x.test/a", ("https", "//x.test/a")),
        ("isnull", ("isnull", "true")),
    ],
)
def test_split_operator(raw, expected):
    assert split_operator(raw) == expected


@pytest.mark.parametrize(
    "query, where",
    [
        ("f_qty=5", Q(qty__exact=5)),
        ("f_qty=ne:5", ~Q(qty__exact=5)),
        ("f_qty=in:1,2", Q(qty__in=[1, 2])),
        ("f_qty=nin:1,2", ~Q(qty__in=[1, 2])),
        ("f_amount=gte:1.5", Q(amount__gte=Decimal("1.5"))),
        ("f_qty=range:1|5", Q(qty__gte=1) & Q(qty__lte=5)),
        ("f_qty=range:1,", Q(qty__gte=1)),
        ("f_qty=range:|5", Q(qty__lte=5)),
        ("f_title=ilike:50%", Q(title__icontains="50%")),
        ("f_title=like:a_b", Q(title__contains="a_b")),
        ("f_title=startswith:ab", Q(title__istartswith="ab")),
        ("f_title=endswith:ab", Q(title__iendswith="ab")),
        ("f_done=false", Q(done__exact=False)),
        ("f_tags=isnull:true", Q(tags__isnull=True)),
        ("f_owner_id=" + str(uuid.UUID(int=7)), Q(owner_id__exact=uuid.UUID(int=7))),
        ("f_due=lt:2024-01-02", Q(due__lt=datetime(2024, 1, 2, tzinfo=UTC))),
        ("f_qty=gt:1&f_qty=lt:9", Q(qty__gt=1) & Q(qty__lt=9)),
    ],
)
def test_filters_become_orm_lookups(query, where):
    assert parse(query).where == Q() & where


@pytest.mark.parametrize(
    "query, where",
    [
        # The official SDK's spellings (upper-case operators, RANGE with a comma) ...
        ("f_qty=IN:1,2", Q(qty__in=[1, 2])),
        ("f_qty=NOT_IN:1,2", ~Q(qty__in=[1, 2])),
        ("f_qty=RANGE:1,5", Q(qty__gte=1) & Q(qty__lte=5)),
        ("f_qty=RANGE:,5", Q(qty__lte=5)),
        ("f_qty=GT:1", Q(qty__gt=1)),
        ("f_title=ILIKE:ab", Q(title__icontains="ab")),
        ("f_title=LIKE:ab", Q(title__contains="ab")),
        ("f_title=NULL:", Q(title__isnull=True)),
        ("f_title=NOT_NULL:", Q(title__isnull=False)),
        ("f_title=IN:open, closed", Q(title__in=["open", "closed"])),
        # ... a day range on a date-time column covers both whole days ...
        (
            "f_due=2024-01-01_2024-01-31",
            Q(due__gte=datetime(2024, 1, 1, tzinfo=UTC)) & Q(due__lt=datetime(2024, 2, 1, tzinfo=UTC)),
        ),
        (
            "f_due=RANGE:2024-01-01,2024-01-31",
            Q(due__gte=datetime(2024, 1, 1, tzinfo=UTC)) & Q(due__lt=datetime(2024, 2, 1, tzinfo=UTC)),
        ),
        # ... and upstream's meaning: empty filters are no filters, an unknown prefix is literal.
        ("f_title=", Q()),
        ("f_qty=eq:", Q()),
        ("f_qty=IN:", Q()),
        ("f_qty=RANGE:,", Q()),
        ("f_title=startswith:", Q()),
        ("f_qty=range:1", Q(qty__gte=1)),
        ("f_title=https://x.test/a", Q(title="https://x.test/a")),
        ("f_title=IN:open,closed", Q(title__in=["open", "closed"])),
    ],
)
def test_sdk_spellings_have_upstream_meaning(query, where):
    assert parse(query).where == Q() & where if where else parse(query).where == Q()


def test_search_columns_narrows_search():
    assert parse("search=x&search_columns=title").where == Q() & Q(title__icontains="x")


def test_search_ors_text_columns():
    assert parse("search=%25x_").where == Q() & Q(title__icontains="%x_")


@pytest.mark.parametrize(
    "query, name, words",
    [
        ("f_status=foo:bar", "f_status", 'unknown column "status"'),
        ("f_qty=foo:1", "f_qty", 'unknown operator "foo"'),
        ("f_qty=ilike:1", "f_qty", "does not apply to int"),
        ("f_tags=eq:1", "f_tags", "does not apply to json"),
        ("f_owner_id=gt:" + str(uuid.UUID(int=1)), "f_owner_id", "does not apply to uuid"),
        ("f_qty=gt:x", "f_qty", "not a valid integer"),
        ("f_qty=gt:99999999999", "f_qty", "out of range"),
        ("f_done=yes please", "f_done", "not a boolean"),
        ("f_qty=range:1,2,3", "f_qty", "range needs"),
        ("f_qty=IN:1,x", "f_qty", "not a valid integer"),
        ("f_qty=NOPE:1", "f_qty", 'unknown operator "nope"'),
        ("f_qty=ILIKE:1", "f_qty", "does not apply to int"),
        ("f_due=2024-01-01_x", "f_due", "not a valid date-time"),
        ("search=a&search_columns=title,zz", "search_columns", 'unknown column "zz"'),
        ("sortBy=tags", "sortBy", "cannot be sorted"),
        ("sortBy=zz", "sortBy", 'unknown column "zz"'),
        ("order=up", "order", "asc"),
        ("page=x", "page", "not an integer"),
        ("per_page=0", "per_page", "1 or more"),
        ("search=a%00b", "search", "NUL"),
    ],
)
def test_errors_name_the_parameter(query, name, words):
    errors = error(query)
    assert name in errors and words in " ".join(errors[name]), errors


def test_all_errors_are_reported_at_once():
    assert set(error("f_qty=x&sortBy=zz&page=0")) == {"f_qty", "sortBy", "page"}
