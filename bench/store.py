"""Dynamic store endpoints vs a hand-written DRF ModelViewSet over a static model with the
same columns, on the same database in the same run; and the dynamic list vs the bare
`QuerySet.values()` + JSON encode of the same rows.

Ratios: `viewset / dynamic` for list, retrieve and create (goal >= 1.0: the dynamic endpoint
at least as fast), `dynamic / bare` for the list (goal <= 1.5). Both sides go through the
full Django stack (middleware, URL resolution, DRF, rendering) with the same
authenticated user, loaded again for each request (as authentication does), so the dynamic
side pays its per-request permission lookup.
"""

import json
import sys
import tempfile
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from bench._support import paired, setup_django, vendor

ROWS = 10_000
PAGE_SIZE = 50
ADDON = "benchshop"
COLUMNS = [
    {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
    {"name": "organization_id", "type": "uuid", "not_null": True},
    {"name": "title", "type": "varchar", "size": 200, "not_null": True},
    {"name": "status", "type": "varchar", "size": 20, "not_null": True, "default": "open"},
    {"name": "priority", "type": "integer", "not_null": True, "default": 0},
    {"name": "amount", "type": "numeric"},
    {"name": "done", "type": "boolean", "not_null": True, "default": False},
    {"name": "due", "type": "date"},
    {"name": "created_at", "type": "timestamptz"},
    {"name": "updated_at", "type": "timestamptz"},
]
MANIFEST = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": ADDON, "name": "Bench shop", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [{"key": "Items", "table": "items", "label": "Items", "columns": COLUMNS}],
}
urlpatterns = []  # filled by _static_api(); this module is the bench's ROOT_URLCONF


def _static_api():
    """The hand-written baseline: a static model, a ModelSerializer and a ModelViewSet."""
    from django.apps.registry import Apps
    from django.db import models
    from django.urls import include, path
    from rest_framework import pagination, permissions, routers, serializers, viewsets

    class StaticItem(models.Model):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
        organization_id = models.UUIDField(db_index=True)  # as the installer indexes it
        title = models.CharField(max_length=200)
        status = models.CharField(max_length=20, default="open")
        priority = models.IntegerField(default=0)
        amount = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
        done = models.BooleanField(default=False)
        due = models.DateField(null=True, blank=True)
        created_at = models.DateTimeField(auto_now_add=True)
        updated_at = models.DateTimeField(auto_now=True)

        class Meta:
            apps = Apps()
            app_label = "bench_static"
            db_table = "bench_static_item"

    class ItemSerializer(serializers.ModelSerializer):
        class Meta:
            model = StaticItem
            fields = "__all__"
            read_only_fields = ("id", "organization_id", "created_at", "updated_at")

    class Pages(pagination.PageNumberPagination):
        page_size = 20
        page_size_query_param = "per_page"
        max_page_size = 200

    def organization(user):
        return user.metacore_membership.organization_id

    class ItemViewSet(viewsets.ModelViewSet):
        serializer_class = ItemSerializer
        pagination_class = Pages
        permission_classes = [permissions.IsAuthenticated]

        def get_queryset(self):
            return StaticItem.objects.filter(organization_id=organization(self.request.user)).order_by(
                "-created_at", "id"
            )

        def perform_create(self, serializer):
            serializer.save(organization_id=organization(self.request.user))

    router = routers.SimpleRouter(trailing_slash=False)
    router.register("items", ItemViewSet, basename="static-item")
    urlpatterns[:] = [
        path("api/", include("metacore.api.store_urls")),
        path("static/", include(router.urls)),
    ]
    return StaticItem


def _seed(dynamic_model, static_model, org):
    from django.db import connection, transaction
    from django.utils import timezone

    with connection.schema_editor() as editor:
        editor.create_model(static_model)
    now = timezone.now()
    rows = [
        dict(
            organization_id=org,
            title=f"item {i}",
            status=("open", "closed", "pending")[i % 3],
            priority=i % 5,
            amount=Decimal(i) / 4,
            done=i % 2 == 0,
            due=None,
            created_at=now,
            updated_at=now,
        )
        for i in range(ROWS)
    ]
    with transaction.atomic():
        for model in (dynamic_model, static_model):
            model.objects.bulk_create([model(id=uuid.uuid4(), **row) for row in rows], batch_size=1000)


@contextmanager
def _without_receivers(signal):
    """Detach the signal's receivers (the hub's publisher) to show the store's own cost."""
    saved = signal.receivers
    signal.receivers = []
    signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        signal.receivers = saved
        signal.sender_receivers_cache.clear()


def _install():
    from metacore.kernel import get_kernel

    folder = Path(tempfile.mkdtemp(prefix="metacore-bench-"))
    (folder / "manifest.json").write_text(json.dumps(MANIFEST))
    get_kernel().installer.install(folder)
    return get_kernel().registry.resolve(f"{ADDON}.items").model_class


def main():
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.urls import clear_url_caches

    from metacore.kernel import get_kernel
    from metacore.models import TenantMembership

    saved = settings.ROOT_URLCONF, connection.settings_dict["CONN_MAX_AGE"]
    # Persistent connections, as a production host runs them (the sandbox's conn_max_age=0
    # would reconnect on every request and measure connection set-up instead).
    connection.settings_dict["CONN_MAX_AGE"] = None
    connection.close()
    static_model = _static_api()
    settings.ROOT_URLCONF = __name__
    clear_url_caches()
    dynamic_model = _install()
    user = User.objects.create_superuser("bench-store", "bench@example.com", None)
    try:
        org = TenantMembership.objects.create(user=user).organization_id
        _seed(dynamic_model, static_model, org)
        _report(_measure(user, org, dynamic_model, static_model))
    finally:  # leave the shared bench database as found for the other bench modules
        get_kernel().installer.uninstall(ADDON, drop_data=True)
        with connection.schema_editor() as editor:
            editor.delete_model(static_model)
        user.delete()
        settings.ROOT_URLCONF, connection.settings_dict["CONN_MAX_AGE"] = saved
        clear_url_caches()


def _measure(user, org, dynamic_model, static_model):
    from django.conf import settings
    from django.core.serializers.json import DjangoJSONEncoder
    from django.test.utils import override_settings
    from rest_framework.test import APIClient

    from metacore.events import data_changed
    from metacore.kernel import reset_kernel

    client = APIClient()
    users = type(user).objects

    def request(method, url, body=None, expect=200):
        def call():
            client.force_authenticate(users.get(pk=user.pk))
            response = (
                getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
            )
            if response.status_code != expect:
                raise AssertionError(
                    f"{method.upper()} {url}: {response.status_code} {response.content[:300]!r}"
                )

        return call

    some_id = dynamic_model.objects.order_by("id").values_list("id", flat=True)[ROWS // 2]
    static_id = static_model.objects.order_by("id").values_list("id", flat=True)[ROWS // 2]
    page = f"?per_page={PAGE_SIZE}&page=7"
    body = {"title": "created", "priority": 3, "amount": "12.5", "done": True}
    dynamic_url, static_url = f"/api/dynamic/{ADDON}.items", "/static/items"

    def bare_list():
        rows = dynamic_model.objects.filter(organization_id=org).order_by("-created_at", "id").values()
        json.dumps(list(rows[6 * PAGE_SIZE : 7 * PAGE_SIZE]), cls=DjangoJSONEncoder)

    results = []

    def compare(name, dynamic, baseline, baseline_name, *, goal, baseline_over_dynamic=True):
        d, b = paired(dynamic, baseline)
        results.append((name, d, baseline_name, b, b / d if baseline_over_dynamic else d / b, goal))

    compare(
        "list 50 of 10k",
        request("get", dynamic_url + page),
        request("get", static_url + page),
        "ModelViewSet",
        goal=">= 1.0",
    )
    compare(
        "retrieve",
        request("get", f"{dynamic_url}/{some_id}"),
        request("get", f"{static_url}/{static_id}"),
        "ModelViewSet",
        goal=">= 1.0",
    )
    create = request("post", dynamic_url, body, 201), request("post", static_url, body, 201)
    compare("create (audit sinks: log+db)", *create, "ModelViewSet", goal=">= 1.0")
    with override_settings(METACORE={**settings.METACORE, "AUDIT_SINKS": []}):
        reset_kernel()
        compare("create (audit off)", *create, "ModelViewSet", goal=">= 1.0")
        with _without_receivers(data_changed):
            compare("create (audit off, no hub)", *create, "ModelViewSet", goal=">= 1.0")
    reset_kernel()
    compare(
        "list 50 of 10k vs bare",
        request("get", dynamic_url + page),
        bare_list,
        "values()+json",
        goal="<= 1.5",
        baseline_over_dynamic=False,
    )
    return results


def _report(results):
    print(
        f"store bench on {vendor()} ({ROWS} rows, page of {PAGE_SIZE}); ratio = baseline/dynamic,"
        " except 'vs bare' = dynamic/bare"
    )
    print(f"{'case':32} {'dynamic us':>11} {'baseline':>14} {'baseline us':>12} {'ratio':>6}  goal")
    for name, d, baseline_name, b, ratio, goal in results:
        print(f"{name:32} {d * 1e6:11.0f} {baseline_name:>14} {b * 1e6:12.0f} {ratio:6.2f}  {goal}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
