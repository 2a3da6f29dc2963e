"""DeliveryService (`get_kernel().deliveries`): outbound webhooks on events, durably.

- **Who receives what.** Data events (`<addon>.<model>.<created|updated|deleted>`) and addon
  events (`event_emit`) go to the organization's `WebhookSubscription`s whose `events` match
  (`order.created`, `order.*`, `*`: upstream's patterns), and to enabled addons' manifest
  subscriptions with a webhook handler (v3 `contributions.subscriptions[]: {event, handler:
  {type: webhook, url}}`) when the addon holds `event:subscribe` for the event.
- **Durable.** Each (event, receiver) is a `WebhookDelivery` row, written after the event's
  transaction committed (events are published on commit, so a rolled-back write sends
  nothing); its task is enqueued when that row commits. The row is the truth, the task
  only a wake-up: an attempt claims the row with a conditional UPDATE (so duplicate tasks
  are harmless) and holds a lease of its budget plus `LEASE_MARGIN_S`. A worker killed
  mid-attempt leaves an expired lease; `recover()` (run by `metacore_worker` every tick)
  puts such rows, and pending rows whose task was lost, back in the queue, without counting
  the lost attempt.
- **Retries.** A failure (no answer, timeout, status outside 2xx) is retried after
  `WEBHOOK_RETRY_BASE_S * 4**(attempt-1)` seconds (upstream's 1, 4, 16... shape), with jitter
  (between half and all of it), capped by `WEBHOOK_RETRY_MAX_S`; after `max_attempts` the
  delivery is `dead` (dead letter, audited as `webhook.delivery`), visible in the admin and
  the API, and `replay()`able. Delivered ones are recorded on their row only.
  A refused destination (SSRF guard, missing capability) is dead at once.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import router, transaction
from django.db.models import F, Q
from django.utils import timezone

from metacore.conf import metacore_settings
from metacore.errors import CapabilityDenied, Conflict, Forbidden, InvalidInput, NotFound
from metacore.integrations import outbound
from metacore.integrations.models import WebhookDelivery, WebhookSubscription
from metacore.security.errors import FetchError
from metacore.store.compiled import CompiledReads, prepared

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.events import AddonEvent, DataEvent
    from metacore.schema.registry import InstalledAddon, ModelRegistry
    from metacore.security.enforcer import Enforcer
    from metacore.security.ssrf import Egress

log = logging.getLogger("metacore.deliveries")
LEASE_MARGIN_S = 5.0
MAX_BODY_KEPT = 2048
Status = WebhookDelivery.Status


def matches(pattern: str, event: str) -> bool:
    """upstream webhooks containsEvent: exact, `*`, or `prefix.*` (anything below prefix)."""
    if pattern in ("*", event):
        return True
    return pattern.endswith(".*") and event.startswith(pattern[:-1])


def _queue_in_database() -> bool:
    """Whether the task backend keeps its queue in this database (django-tasks-db), so a
    task row can be written in the same transaction as the row it is about; any other
    backend (RQ) is only told after the commit."""
    from metacore.integrations.tasks import deliver_webhook

    return type(deliver_webhook.get_backend()).__module__.startswith("django_tasks_db")


_SUBSCRIPTION_READS = CompiledReads()


def _active_subscriptions(tenant: str) -> list[dict[str, Any]]:
    """The organization's active webhook subscriptions, as a statement compiled once: most
    organizations have none, and building this query through the ORM on every write cost a
    third of a store create."""
    using = router.db_for_read(WebhookSubscription)
    return _SUBSCRIPTION_READS.select(
        WebhookSubscription,
        using,
        lambda: WebhookSubscription.objects.using(using).filter(organization_id=tenant, active=True),
        "active",
        ("id", "url", "events", "retry_max", "timeout_sec"),
        lambda: [prepared(WebhookSubscription, "organization_id", tenant, using)],  # `active` is SQL
    )


def backoff_seconds(attempt: int) -> float:
    delay: float = min(
        metacore_settings.WEBHOOK_RETRY_BASE_S * 4 ** max(attempt - 1, 0),
        metacore_settings.WEBHOOK_RETRY_MAX_S,
    )
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (retry jitter, not a secret)


class DeliveryService:
    def __init__(self, registry: ModelRegistry, enforcer: Enforcer, egress: Egress, audit: AuditPipe) -> None:
        self.registry = registry
        self.enforcer = enforcer
        self.egress = egress
        self.audit = audit
        # (registry revision, [(addon, pattern, url)]): parsed once per revision, not per event
        self._manifest_subs: tuple[int | None, list[tuple[InstalledAddon, str, str]]] = (None, [])

    # -- fan-out --------------------------------------------------------------------------

    def publish_event(self, kind: str, event: DataEvent | AddonEvent) -> list[WebhookDelivery]:
        """A data or addon event, as its signal hands it over (receivers connected in apps.py);
        its payload is built only when a receiver matches (most writes have none)."""
        return self._publish(
            event.name, event.tenant, lambda: {"event": event.name, "type": kind, "data": asdict(event)}
        )

    def publish(self, event: str, tenant: str | None, payload: dict[str, Any]) -> list[WebhookDelivery]:
        """Record one delivery per matching receiver and enqueue them when that commits."""
        return self._publish(event, tenant, lambda: payload)

    def _publish(
        self, event: str, tenant: str | None, make_payload: Callable[[], dict[str, Any]]
    ) -> list[WebhookDelivery]:
        rows: list[WebhookDelivery] = []
        payload = None
        for sub in _active_subscriptions(tenant) if tenant else ():
            if any(matches(p, event) for p in sub["events"]):
                payload = payload or make_payload()
                rows.append(
                    WebhookDelivery(
                        subscription_id=sub["id"],
                        tenant=str(tenant),
                        event=event,
                        url=sub["url"],
                        payload=payload,
                        max_attempts=max(sub["retry_max"], 1),
                        timeout_s=float(sub["timeout_sec"] or metacore_settings.WEBHOOK_TIMEOUT_S),
                    )
                )
        for addon, pattern, url in self._manifest_subscriptions():
            if (
                matches(pattern, event)
                and addon.enabled_for(tenant or None)
                and self.enforcer.allows(addon.key, "event:subscribe", event)
            ):
                payload = payload or make_payload()
                rows.append(
                    WebhookDelivery(
                        addon_key=addon.key,
                        tenant=str(tenant or ""),
                        event=event,
                        url=url,
                        payload=payload,
                        max_attempts=metacore_settings.WEBHOOK_MAX_ATTEMPTS,
                        timeout_s=float(metacore_settings.WEBHOOK_TIMEOUT_S),
                    )
                )
        if not rows:
            return []
        now = timezone.now()
        for row in rows:
            row.next_attempt_at = now
        with transaction.atomic():
            WebhookDelivery.objects.bulk_create(rows)
            for row in rows:
                self._enqueue_with_commit(row.id)
        return rows

    def _manifest_subscriptions(self) -> list[tuple[InstalledAddon, str, str]]:
        """Enabled addons' webhook subscriptions, from the registry's read model."""
        registry = self.registry
        revision = registry.revision
        if self._manifest_subs[0] != revision:
            found = []
            for addon in registry.installed_addons():
                if not addon.enabled:
                    continue
                raw = addon.manifest.raw
                contributions = raw.get("contributions")
                if not isinstance(contributions, dict):
                    contributions = {}
                backend_url = addon.manifest.backend.url if addon.manifest.backend else None
                for sub in contributions.get("subscriptions") or raw.get("subscriptions") or []:
                    handler = sub.get("handler") if isinstance(sub, dict) else None
                    if not (
                        isinstance(handler, dict)
                        and handler.get("type") == "webhook"
                        and isinstance(handler.get("url"), str)
                        and isinstance(sub.get("event"), str)
                    ):
                        continue
                    try:
                        found.append((addon, sub["event"], outbound.resolve_url(handler["url"], backend_url)))
                    except InvalidInput:
                        continue
            self._manifest_subs = (revision, found)
        return self._manifest_subs[1]

    def _enqueue_with_commit(self, delivery_id: uuid.UUID | str, run_after: datetime | None = None) -> None:
        """Enqueue as part of the current transaction: in it when the queue lives in this
        database, else once it commits (a worker must never see a task before its row)."""
        if _queue_in_database():
            self._enqueue(delivery_id, run_after)
        else:
            transaction.on_commit(lambda: self._enqueue(delivery_id, run_after))

    @staticmethod
    def _enqueue(delivery_id: uuid.UUID | str, run_after: datetime | None = None) -> None:
        """Wake a worker for the delivery. A backend that cannot defer (the immediate one)
        gets no retry task: `recover()` requeues the delivery once it is overdue."""
        from metacore.integrations.tasks import deliver_webhook

        if run_after is not None:
            if not deliver_webhook.get_backend().supports_defer:
                return
            deliver_webhook.using(run_after=run_after).enqueue(str(delivery_id))
        else:
            deliver_webhook.enqueue(str(delivery_id))

    # -- attempts -------------------------------------------------------------------------

    def attempt(self, delivery_id: uuid.UUID | str) -> str:
        """Claim the delivery and make one attempt; returns its status afterwards (or
        `skipped` when another attempt owns it or it is not due)."""
        now = timezone.now()
        due = Q(status=Status.PENDING, next_attempt_at__lte=now + timedelta(seconds=1)) | Q(
            status=Status.SENDING, lease_until__lt=now
        )
        delivery = WebhookDelivery.objects.filter(id=delivery_id).first()
        if delivery is None:
            return "skipped"
        lease = now + timedelta(seconds=delivery.timeout_s + LEASE_MARGIN_S)
        if not WebhookDelivery.objects.filter(due, id=delivery_id).update(
            status=Status.SENDING, attempts=F("attempts") + 1, lease_until=lease, updated_at=now
        ):
            return "skipped"
        delivery.refresh_from_db()
        try:
            sent = self._send(delivery)
        except (Forbidden, CapabilityDenied, InvalidInput, Conflict) as exc:
            return self._finish(delivery, None, exc.message, None, dead=True)
        except FetchError as exc:
            return self._finish(delivery, None, exc.message, None)
        response = sent.response
        body = response.body[:MAX_BODY_KEPT].decode("utf-8", "replace")
        if 200 <= response.status < 300:
            return self._finish(delivery, response.status, "", sent.duration_ms, body=body, delivered=True)
        return self._finish(
            delivery, response.status, f"the receiver answered {response.status}", sent.duration_ms, body=body
        )

    def _send(self, delivery: WebhookDelivery) -> outbound.Sent:
        body = json.dumps(delivery.payload, default=str, separators=(",", ":")).encode()
        headers = {"X-Metacore-Delivery": str(delivery.id), "User-Agent": "metacore-webhooks/1.0"}
        if delivery.subscription_id:
            sub = WebhookSubscription.objects.filter(id=delivery.subscription_id).first()
            if sub is None:
                raise NotFound("the webhook subscription was deleted")
            return outbound.send(
                self.egress,
                delivery.url,
                body,
                secret=sub.secret,
                event=delivery.event,
                tenant=delivery.tenant,
                extra_headers={**headers, "X-Metacore-Webhook-ID": str(sub.id)},
                timeout=delivery.timeout_s,
            )
        try:
            addon = self.registry.installed(delivery.addon_key)
        except NotFound:
            addon = None
        if addon is None or not addon.enabled:
            raise Conflict(f'addon "{delivery.addon_key}" is not installed and enabled')
        return outbound.send(
            self.egress,
            delivery.url,
            body,
            secret=outbound.addon_secret(addon, delivery.tenant),
            installation_id=addon.id,
            event=delivery.event,
            tenant=delivery.tenant,
            extra_headers=headers,
            timeout=delivery.timeout_s,
            addon_key=addon.key,
        )

    def _finish(
        self,
        delivery: WebhookDelivery,
        status_code: int | None,
        error: str,
        latency_ms: float | None,
        *,
        body: str = "",
        delivered: bool = False,
        dead: bool = False,
    ) -> str:
        now = timezone.now()
        changes: dict[str, Any] = dict(
            response_status=status_code,
            error=error[:2000],
            latency_ms=latency_ms,
            response_body=body,
            lease_until=None,
            updated_at=now,
        )
        if delivered:
            changes.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
        elif dead or delivery.attempts >= delivery.max_attempts:
            changes.update(status=Status.DEAD, next_attempt_at=None)
        else:
            changes.update(
                status=Status.PENDING,
                next_attempt_at=now + timedelta(seconds=backoff_seconds(delivery.attempts)),
            )
        with transaction.atomic():
            WebhookDelivery.objects.filter(id=delivery.id, status=Status.SENDING).update(**changes)
            if delivery.subscription_id:
                counter = "success_count" if delivered else "failure_count"
                WebhookSubscription.objects.filter(id=delivery.subscription_id).update(
                    **{counter: F(counter) + 1, "last_triggered_at": now}
                )
            if changes["status"] == Status.PENDING:
                self._enqueue_with_commit(delivery.id, run_after=changes["next_attempt_at"])
            elif changes["status"] == Status.DEAD:
                self.audit.record(
                    "webhook.delivery",
                    tenant=delivery.tenant,
                    addon=delivery.addon_key,
                    target=delivery.event,
                    decision="allow",
                    reason=error[:500],
                    details={
                        "delivery": str(delivery.id),
                        "status": "dead",
                        "attempts": delivery.attempts,
                        "response_status": status_code,
                        "subscription": str(delivery.subscription_id or ""),
                    },
                )
        log.info(
            "delivery %s attempt %s: %s %s",
            delivery.id,
            delivery.attempts,
            changes["status"],
            status_code or error,
        )
        return str(changes["status"])

    # -- operators ------------------------------------------------------------------------

    def recover(self, now: datetime | None = None) -> int:
        """Requeue deliveries whose attempt died with its worker (expired lease) or whose
        task was lost (pending, overdue by `WEBHOOK_RECOVER_AFTER_S`). Returns how many."""
        now = now or timezone.now()
        overdue = now - timedelta(seconds=metacore_settings.WEBHOOK_RECOVER_AFTER_S)
        stale = Q(status=Status.SENDING, lease_until__lt=now) | Q(
            status=Status.PENDING, next_attempt_at__lt=overdue
        )
        count = 0
        for row_id, status in WebhookDelivery.objects.filter(stale).values_list("id", "status")[:1000]:
            lost_attempt = F("attempts") - 1 if status == Status.SENDING else F("attempts")
            with transaction.atomic():
                if not WebhookDelivery.objects.filter(stale, id=row_id).update(
                    status=Status.PENDING, attempts=lost_attempt, lease_until=None, next_attempt_at=now
                ):
                    continue
                self._enqueue_with_commit(row_id)
            log.info(
                "delivery %s requeued (%s)",
                row_id,
                "attempt lost with its worker" if status == Status.SENDING else "task lost",
            )
            count += 1
        return count

    def replay(self, delivery_id: uuid.UUID | str, actor: str = "") -> WebhookDelivery:
        """Send a dead (or delivered) delivery again, with a fresh attempt budget."""
        with transaction.atomic():
            updated = WebhookDelivery.objects.filter(
                id=delivery_id, status__in=[Status.DEAD, Status.DELIVERED]
            ).update(
                status=Status.PENDING, attempts=0, next_attempt_at=timezone.now(), error="", lease_until=None
            )
            delivery = WebhookDelivery.objects.filter(id=delivery_id).first()
            if delivery is None:
                raise NotFound(f"no delivery {delivery_id}")
            if not updated:
                raise Conflict(
                    f"delivery {delivery_id} is {delivery.status}; only dead or delivered ones are replayed"
                )
            self.audit.record(
                "webhook.delivery",
                actor=actor,
                tenant=delivery.tenant,
                addon=delivery.addon_key,
                target=delivery.event,
                decision="allow",
                reason="replay",
                details={"delivery": str(delivery.id), "status": "replayed"},
            )
            self._enqueue_with_commit(delivery.id)
        return delivery
