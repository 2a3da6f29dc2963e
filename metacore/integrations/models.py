"""Outbound webhook subscriptions and their deliveries (imported by metacore/models.py)."""

import uuid

from django.db import models


class WebhookSubscription(models.Model):
    """A user-defined webhook of one organization (upstream `webhooks.Webhook`): events
    matching one of `events` (`order.created`, `order.*`, `*`) are POSTed to `url`, signed
    with `secret`, which is write-only (shown once, at creation)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization_id = models.UUIDField(db_index=True)
    name = models.CharField(max_length=255, blank=True)
    url = models.CharField(max_length=1024)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=128, editable=False)
    active = models.BooleanField(default=True)
    retry_max = models.PositiveSmallIntegerField(default=3, help_text="attempts before dead-lettering")
    timeout_sec = models.PositiveSmallIntegerField(default=15)
    success_count = models.PositiveIntegerField(default=0)
    failure_count = models.PositiveIntegerField(default=0)
    last_triggered_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or self.url} ({', '.join(self.events)})"


class WebhookDelivery(models.Model):
    """One event to one receiver: every attempt updates it; `dead` after the last failure."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        DEAD = "dead"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    addon_key = models.CharField(
        max_length=64, blank=True, help_text="set for an addon's manifest subscription"
    )
    tenant = models.CharField(max_length=64, blank=True, db_index=True)
    event = models.CharField(max_length=200, db_index=True)
    url = models.CharField(max_length=1024)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    timeout_s = models.FloatField(default=15.0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="a sending attempt owns it until then"
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} -> {self.url} ({self.status}, {self.attempts} attempts)"


class ScheduleRun(models.Model):
    """One tick of one addon schedule. The unique (addon, schedule, tick) row is the claim:
    however many workers tick, one inserts it and runs the export."""

    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"

    addon_key = models.CharField(max_length=64)
    schedule_key = models.CharField(max_length=100)
    tick_at = models.DateTimeField()
    export = models.CharField(max_length=100)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    worker = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-tick_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["addon_key", "schedule_key", "tick_at"], name="metacore_schedule_run_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.addon_key}.{self.schedule_key} @ {self.tick_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class EventLogEntry(models.Model):
    """An addon event (`event_emit`, inbound event hooks), kept per organization for queries
    by type and time; pruned by `metacore_eventlog_prune` (retention like the audit's)."""

    tenant = models.CharField(max_length=64, blank=True)
    addon_key = models.CharField(max_length=64)
    type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "type", "at"], name="metacore_eventlog_tenant_type")]
        verbose_name_plural = "event log"
