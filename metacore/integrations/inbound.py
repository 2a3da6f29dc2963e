"""Inbound webhooks (`get_kernel().inbound`): a URL per installation and declared hook.

A manifest declares (v3 top level `webhooks`, or the flat manifest's)::

    "webhooks": [{"key": "payment", "function": "OnPayment"},     # run an export
                 {"key": "ping", "event": "shop.pinged"}]        # or emit an event

and receives at `POST /api/metacore/webhooks/in/<addon>/<key>`. Every request is verified
before anything runs: upstream's signature with the installation secret over the request
path and body, a timestamp within `WEBHOOK_MAX_SKEW_SECONDS`, and a nonce never seen before
(`installer/webhooks.verify_request`; 401 otherwise). An export gets `{"webhook", "body",
"content_type"}` and its answer is the response; an event is published (needs the addon's
`event:emit` capability) once the request's transaction commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction

from metacore.context import CallContext
from metacore.errors import NotFound
from metacore.events import AddonEvent, addon_event, publish_on_commit
from metacore.installer.errors import WebhookRejected
from metacore.installer.webhooks import verify_request

if TYPE_CHECKING:
    from metacore.sandbox.service import SandboxService
    from metacore.schema.registry import ModelRegistry
    from metacore.security.enforcer import Enforcer


def declared_webhooks(raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """{key: {"function": export} | {"event": name}} from a manifest as received (`Manifest.raw`)."""
    found: dict[str, dict[str, str]] = {}
    for entry in raw.get("webhooks") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            continue
        handler: dict[str, Any] = entry["handler"] if isinstance(entry.get("handler"), dict) else {}
        function = entry.get("function") or entry.get("export") or handler.get("function")
        if isinstance(function, str):
            found[entry["key"]] = {"function": function}
        elif isinstance(entry.get("event"), str):
            found[entry["key"]] = {"event": entry["event"]}
    return found


class InboundService:
    def __init__(self, registry: ModelRegistry, sandbox: SandboxService, enforcer: Enforcer) -> None:
        self.registry = registry
        self.sandbox = sandbox
        self.enforcer = enforcer

    def receive(
        self,
        addon_key: str,
        hook_key: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        content_type: str = "",
        request_id: str = "",
    ) -> tuple[int, object]:
        """Verify and dispatch one inbound request; returns (status, JSON answer)."""
        from metacore.integrations.outbound import addon_secret

        try:
            addon = self.registry.installed(addon_key)
        except NotFound:
            addon = None
        hook = declared_webhooks(addon.manifest.raw).get(hook_key) if addon and addon.enabled else None
        if addon is None or hook is None:
            raise NotFound(f'addon "{addon_key}" declares no webhook "{hook_key}"')
        secret = addon_secret(addon)
        if not secret:
            raise WebhookRejected(f'addon "{addon_key}" has no recoverable secret to verify with')
        verify_request(secret, "POST", path, body, headers, scope=f"in:{addon_key}")
        try:
            decoded = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            decoded = body.decode("utf-8", "replace")
        context = CallContext.system(f"webhook:{hook_key}", request_id=request_id)
        if "function" in hook:
            result = self.sandbox.call(
                addon_key,
                hook["function"],
                {"webhook": hook_key, "body": decoded, "content_type": content_type},
                context,
            )
            return 200, result if result is not None else {"success": True}
        self.enforcer.check(addon_key, "event:emit", hook["event"], context)
        with transaction.atomic():
            publish_on_commit(
                addon_event,
                AddonEvent(
                    addon=addon_key,
                    name=hook["event"],
                    tenant=None,
                    payload=decoded if isinstance(decoded, dict) else {"body": decoded},
                ),
            )
        return 202, {"success": True, "data": {"event": hook["event"]}}
