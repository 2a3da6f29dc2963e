"""HTTP for outbound webhooks and tools (docs/integrations.md), thin views over
`get_kernel().deliveries`, `get_kernel().tools` and the subscription/delivery models.

- `GET/POST webhooks`: the caller's organization's subscriptions (the secret is answered
  once, at creation); `DELETE webhooks/<id>`.
- `GET webhooks/deliveries?status=&event=`: deliveries of the caller's organization (staff: all).
- `POST webhooks/deliveries/<id>/replay`: send a dead or delivered delivery again (staff).
- `GET tools`, `POST tools/execute`: the tool registry and dispatcher (upstream's shapes).
"""

import secrets
import uuid

from rest_framework import serializers
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.api.idempotency import idempotent
from metacore.conf import metacore_settings
from metacore.context import CallContext, request_id_of
from metacore.errors import Forbidden, InvalidInput, NotFound
from metacore.integrations.models import WebhookDelivery, WebhookSubscription
from metacore.kernel import get_kernel

DELIVERY_FIELDS = (
    "id",
    "subscription_id",
    "addon_key",
    "tenant",
    "event",
    "url",
    "status",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "response_status",
    "error",
    "latency_ms",
    "created_at",
    "updated_at",
    "delivered_at",
)


class SubscriptionSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    url = serializers.URLField(
        max_length=1024
    )  # http(s) only (URLValidator); the SSRF guard checks it when sent
    events = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=50)
    active = serializers.BooleanField(required=False, default=True)
    retry_max = serializers.IntegerField(min_value=1, max_value=20, required=False, default=3)
    timeout_sec = serializers.IntegerField(min_value=1, max_value=60, required=False, default=15)


def subscription_json(sub, secret=None):
    body = {
        "id": str(sub.id),
        "organization_id": str(sub.organization_id),
        "name": sub.name,
        "url": sub.url,
        "events": sub.events,
        "active": sub.active,
        "retry_max": sub.retry_max,
        "timeout_sec": sub.timeout_sec,
        "success_count": sub.success_count,
        "failure_count": sub.failure_count,
        "last_triggered_at": sub.last_triggered_at,
        "created_at": sub.created_at,
    }
    if secret:
        body["secret"] = secret
    return body


def delivery_json(delivery):
    body = {name: getattr(delivery, name) for name in DELIVERY_FIELDS}
    body["id"] = str(delivery.id)
    body["subscription_id"] = str(delivery.subscription_id) if delivery.subscription_id else None
    return body


def _tenant(request):
    tenant = metacore_settings.TENANT_RESOLVER(request.user, request)
    if not tenant:
        raise Forbidden("webhooks belong to an organization and the current user belongs to none")
    return uuid.UUID(str(tenant))


def _uuid(value, name):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"no {name} {value!r}") from None


class WebhookView(EnvelopeErrorsMixin, APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]


class SubscriptionListView(WebhookView):
    def get(self, request):
        subs = WebhookSubscription.objects.filter(organization_id=_tenant(request))
        return Response({"success": True, "data": [subscription_json(s) for s in subs]})

    def post(self, request):
        org = _tenant(request)
        serializer = SubscriptionSerializer(data=request.data if isinstance(request.data, dict) else {})
        if not serializer.is_valid():
            raise InvalidInput("invalid webhook", errors=serializer.errors)
        secret = secrets.token_hex(32)
        sub = WebhookSubscription.objects.create(
            organization_id=org, secret=secret, created_by=str(request.user.pk), **serializer.validated_data
        )
        return Response({"success": True, "data": subscription_json(sub, secret)}, status=201)


class SubscriptionView(WebhookView):
    def delete(self, request, sub_id):
        deleted, _ = WebhookSubscription.objects.filter(
            id=_uuid(sub_id, "webhook"), organization_id=_tenant(request)
        ).delete()
        if not deleted:
            raise NotFound(f"no webhook {sub_id}")
        return Response(status=204)


class DeliveryListView(WebhookView):
    def get(self, request):
        deliveries = WebhookDelivery.objects.all()
        if not request.user.is_staff:
            deliveries = deliveries.filter(tenant=str(_tenant(request)))
        status = request.query_params.get("status")
        if status:
            if status not in WebhookDelivery.Status.values:
                raise InvalidInput(
                    f"unknown status {status!r}",
                    errors={"status": [f"one of {', '.join(WebhookDelivery.Status.values)}"]},
                )
            deliveries = deliveries.filter(status=status)
        if request.query_params.get("event"):
            deliveries = deliveries.filter(event=request.query_params["event"])
        return Response({"success": True, "data": [delivery_json(d) for d in deliveries[:200]]})


class DeliveryReplayView(WebhookView):
    permission_classes = [IsAdminUser]

    def post(self, request, delivery_id):
        delivery = get_kernel().deliveries.replay(_uuid(delivery_id, "delivery"), actor=str(request.user.pk))
        return Response({"success": True, "data": delivery_json(delivery)}, status=202)


class ToolListView(WebhookView):
    """`GET tools[?addon_key=]`: upstream's list (each ToolDef plus `addon_key`)."""

    def get(self, request):
        _tenant(request)
        tools = get_kernel().tools.list(request.query_params.get("addon_key") or None)
        return Response([tool.as_json() for tool in tools])


class ToolExecuteView(WebhookView):
    """`POST tools/execute {addon_key, tool_id, parameters}`: upstream's Result; 400 naming the
    parameter that failed validation; 502 when the addon cannot be reached. With an
    `Idempotency-Key` a repeated call answers the first success again instead of running the
    tool twice (`metacore.api.idempotency`)."""

    def post(self, request):
        org = _tenant(request)
        return idempotent(request, lambda: self._execute(request, org))

    def _execute(self, request, org):
        from metacore.integrations.tools import ToolFailed

        body = request.data if isinstance(request.data, dict) else {}
        missing = {
            name: ["required"]
            for name in ("addon_key", "tool_id")
            if not isinstance(body.get(name), str) or not body[name]
        }
        if missing:
            raise InvalidInput("addon_key and tool_id are required", errors=missing)
        try:
            result = get_kernel().tools.execute(
                body["addon_key"],
                body["tool_id"],
                body.get("parameters") or {},
                CallContext.from_request(request, tenant=org),
            )
        except ToolFailed as exc:
            return Response({"success": False, "error": str(exc)}, status=502)
        return Response(result)


class _RawBody(BaseParser):
    """Leaves the body to the view: the signature covers its exact bytes."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class InboundWebhookView(EnvelopeErrorsMixin, APIView):
    """`POST webhooks/in/<addon>/<key>`: no session or token; the signature is the credential."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [_RawBody]

    def post(self, request, addon_key, hook_key):
        body = request.body
        request_id = request_id_of(request)
        status, answer = get_kernel().inbound.receive(
            addon_key,
            hook_key,
            request.get_full_path(),
            body,
            request.headers,
            request.content_type or "",
            request_id,
        )
        return Response(answer, status=status)


class EventLogView(WebhookView):
    """`GET events?type=&since=&until=&limit=`: the caller's organization's addon events,
    newest first (`type` exact or `prefix.*`; times ISO 8601; limit 1..500, default 100)."""

    def get(self, request):
        from django.utils.dateparse import parse_datetime

        from metacore.integrations import eventlog

        params, errors, bounds = request.query_params, {}, {}
        for name in ("since", "until"):
            if params.get(name):
                value = parse_datetime(params[name]) if len(params[name]) <= 64 else None
                if value is None or value.tzinfo is None:
                    errors[name] = ["an ISO 8601 date-time with a UTC offset"]
                bounds[name] = value
        limit = params.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 500:
            errors["limit"] = ["an integer from 1 to 500"]
        if errors:
            raise InvalidInput("invalid event log query", errors=errors)
        entries = eventlog.query(
            _tenant(request), type=params.get("type") or None, limit=int(limit), **bounds
        )
        return Response(
            {
                "success": True,
                "data": [
                    {"id": e.id, "type": e.type, "addon_key": e.addon_key, "payload": e.payload, "at": e.at}
                    for e in entries
                ],
            }
        )
