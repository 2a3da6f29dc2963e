"""Admin for webhook subscriptions (secret never shown) and deliveries (dead letters,
replay); registered from metacore/admin.py."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from metacore.admin_base import ReadOnlyAdmin
from metacore.errors import MetacoreError
from metacore.integrations.models import EventLogEntry, ScheduleRun, WebhookDelivery, WebhookSubscription


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic only in django-stubs
    list_display = (
        "name",
        "url",
        "organization_id",
        "active",
        "success_count",
        "failure_count",
        "last_triggered_at",
    )
    list_filter = ("active",)
    search_fields = ("name", "url")
    exclude = ("secret",)
    readonly_fields = ("success_count", "failure_count", "last_triggered_at", "created_by")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "event",
        "url",
        "status",
        "attempts",
        "response_status",
        "latency_ms",
        "tenant",
        "created_at",
    )
    list_filter = ("status", "addon_key")
    search_fields = ("event", "url", "tenant")
    actions = ("replay",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    @admin.action(description="Replay selected deliveries (dead or delivered)")
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        from metacore.kernel import get_kernel

        for delivery in queryset:
            try:
                get_kernel().deliveries.replay(delivery.id, actor=str(request.user.pk))
            except MetacoreError as exc:
                self.message_user(request, f"{delivery.id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{delivery.id}: replayed", messages.SUCCESS)


@admin.register(ScheduleRun)
class ScheduleRunAdmin(ReadOnlyAdmin):
    list_display = ("addon_key", "schedule_key", "tick_at", "status", "duration_ms", "worker")
    list_filter = ("status", "addon_key")
    readonly_fields = [f.name for f in ScheduleRun._meta.fields]


@admin.register(EventLogEntry)
class EventLogEntryAdmin(ReadOnlyAdmin):
    list_display = ("type", "addon_key", "tenant", "at")
    list_filter = ("addon_key",)
    search_fields = ("type", "tenant")
    readonly_fields = [f.name for f in EventLogEntry._meta.fields]
