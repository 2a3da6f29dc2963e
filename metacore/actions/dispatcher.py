"""ActionDispatcher (`get_kernel().actions`): run a row action's trigger, upstream's way.

Triggers (upstream `dynamic/action.go` and `bridge/actions.go`):

- `wasm`: the addon's export, through the sandbox;
- `noop`: nothing runs; `{success: true, meta: {no_op: true}}`;
- `webhook`: a signed POST (`integrations/outbound.py`) to the trigger's URL or the legacy
  `hooks["<model>::<action>"]` entry, relative URLs joined to `backend.url`.

A wasm action that also has a URL (a `hooks` map entry or `trigger.url`) calls it after
the export succeeded, inside the same transaction when `run_in_tx`: a webhook that declines
rolls the export's writes back. The answer maps to `Outcome`: a `{success, data|error, meta}`
envelope is honoured, other JSON (or text) is the data; a 4xx/5xx answer is a decline (422),
an unreachable receiver 502, one past the budget 504. Refusals before anything is sent
(egress blocked, capability denied, bad URL) raise, like any kernel 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metacore.context import user_actor
from metacore.integrations import outbound
from metacore.manifest.model import Action, Manifest, Model
from metacore.sandbox.errors import ExportNotAllowed, SandboxError
from metacore.security.errors import FetchError, FetchTimeout

if TYPE_CHECKING:
    from metacore.context import CallContext
    from metacore.sandbox.service import SandboxService
    from metacore.schema.registry import InstalledAddon
    from metacore.security.ssrf import Egress

TRIGGERS = ("wasm", "noop", "webhook")


@dataclass
class ActionRequest:
    ctx: CallContext
    installation: InstalledAddon
    manifest: Manifest
    spec: Model
    action: Action
    row: dict[str, Any]
    args: dict[str, Any]
    deferred_audit: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    ok: bool
    data: Any = None
    error: dict[str, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    status: int = 200


class ActionDispatcher:
    def __init__(self, sandbox: Callable[[], SandboxService], egress: Egress) -> None:
        """`sandbox` is a provider: the sandbox runs row actions through this dispatcher, and
        this dispatcher runs their wasm triggers in the sandbox (a construction cycle)."""
        self._sandbox = sandbox
        self.egress = egress

    @property
    def sandbox(self) -> SandboxService:
        return self._sandbox()

    def check(self, manifest: Manifest, action: Action) -> None:
        """Refuse, before anything runs, an action that cannot be dispatched."""
        if action.handler_type == "wasm":
            export = action.function or action.key
            if manifest.backend is None or export not in manifest.backend.exports:
                raise ExportNotAllowed(
                    f'action "{action.key}" calls {export!r}, which backend.exports does not list'
                )

    def dispatch(self, request: ActionRequest) -> Outcome:
        handler = {"wasm": self._wasm, "noop": self._noop, "webhook": self._webhook}[
            request.action.handler_type
        ]
        outcome = handler(request)
        if outcome.ok and request.action.handler_type == "wasm" and request.action.url:
            confirmed = self._webhook(request)
            confirmed.meta = {**outcome.meta, **confirmed.meta}
            if not confirmed.ok or confirmed.data is None:
                confirmed.data = outcome.data if confirmed.ok else None
            return confirmed
        return outcome

    # -- triggers -------------------------------------------------------------------------

    def _noop(self, request: ActionRequest) -> Outcome:
        self._audit(request, "noop", outcome="ok")
        return Outcome(True, None, meta={"no_op": True})

    def _wasm(self, request: ActionRequest) -> Outcome:
        export = request.action.function or request.action.key
        try:
            result = self.sandbox.invoke(
                request.manifest,
                request.installation.bundle_path,
                export,
                self._payload(request),
                request.ctx,
                settings=request.installation.settings_for(request.ctx.tenant),
                deferred_audit=request.deferred_audit,
            )
        except SandboxError as exc:
            return Outcome(False, error={"code": exc.code, "message": exc.message}, status=exc.status)
        ok, data, error, guest_meta, status = interpret_result(result)
        return Outcome(ok, data, error, guest_meta, status)

    def _webhook(self, request: ActionRequest) -> Outcome:
        ctx, action, inst = request.ctx, request.action, request.installation
        backend_url = request.manifest.backend.url if request.manifest.backend else None
        url = outbound.resolve_url(action.url or "", backend_url) if action.url else None
        if url is None:
            from metacore.errors import InvalidInput

            raise InvalidInput(
                f'webhook action "{action.key}" has no URL (trigger.url, hooks map or backend.url)',
                errors={"url": ["missing"]},
            )
        hook = f"{request.spec.key}::{action.key}"
        body = json.dumps(
            {
                "record_id": request.row.get("id"),
                "payload": request.args,
                "hook": hook,
                "org_id": ctx.tenant,
                "addon_key": inst.key,
                "installation_id": str(inst.id),
                "row": request.row,
            },
            default=str,
            separators=(",", ":"),
        ).encode()
        try:
            sent = outbound.send(
                self.egress,
                url,
                body,
                secret=outbound.addon_secret(inst, ctx.tenant),
                installation_id=inst.id,
                event=hook,
                tenant=ctx.tenant,
                addon_key=inst.key,
                context=ctx,
                extra_headers={"X-Metacore-Invocation": "action", "X-Metacore-User-ID": user_actor(ctx.user)},
            )
        except FetchError as exc:
            code, status = ("timeout", 504) if isinstance(exc, FetchTimeout) else ("webhook_unreachable", 502)
            self._audit(request, "webhook", outcome=code, url=url, reason=exc.message)
            return Outcome(False, error={"code": code, "message": exc.message}, status=status)
        response = sent.response
        self._audit(
            request,
            "webhook",
            outcome="ok" if response.status < 400 else "declined",
            url=url,
            status=response.status,
            duration_ms=round(sent.duration_ms, 3),
            signed=sent.signed,
        )
        return interpret_answer(response.status, response.body)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _payload(request: ActionRequest) -> dict[str, Any]:
        ctx, spec = request.ctx, request.spec
        return {
            "row": request.row,
            "args": request.args,
            "ctx": {
                "addon": request.installation.key,
                "model": spec.key,
                "table": spec.table,
                "action": request.action.key,
                "principal": {"user_id": user_actor(ctx.user) or None, "org_id": ctx.tenant},
                "request_id": ctx.request_id,
            },
        }

    def _audit(
        self,
        request: ActionRequest,
        trigger: str,
        *,
        outcome: str,
        url: str | None = None,
        reason: str = "",
        **details: object,
    ) -> None:
        from metacore.security.enforcer import redacted_target
        from metacore.security.patterns import HTTP_FETCH

        ctx = request.ctx
        if url:
            details["url"] = redacted_target(HTTP_FETCH, url)
        request.deferred_audit.append(
            dict(
                kind="action.dispatch",
                actor=ctx.actor,
                tenant=ctx.tenant or "",
                addon=request.installation.key,
                target=f"{request.spec.key}::{request.action.key}",
                decision="allow",
                reason=reason,
                request_id=ctx.request_id,
                details={"trigger": trigger, "outcome": outcome, **details},
            )
        )


def interpret_answer(status: int, body: bytes) -> Outcome:
    """A webhook's HTTP answer as the action's outcome."""
    try:
        decoded = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        decoded = body.decode("utf-8", "replace")
    if status >= 400:
        error = decoded.get("error") if isinstance(decoded, dict) else None
        if error is None:
            text = decoded if isinstance(decoded, str) else ""
            error = {
                "code": "webhook_declined",
                "message": f"the webhook answered {status}" + (f": {text[:200]}" if text else ""),
            }
        return Outcome(False, error=normalise_error(error), status=422)
    ok, data, error, guest_meta, answer_status = interpret_result(decoded)
    return Outcome(ok, data, error, guest_meta, answer_status)


def normalise_error(error: object) -> dict[str, str]:
    if isinstance(error, dict):
        return {
            "code": str(error.get("code") or "action_failed"),
            "message": str(error.get("message") or "the action failed"),
        }
    if isinstance(error, str) and error:
        return {"code": "action_failed", "message": error}
    return {"code": "action_failed", "message": "the action failed"}


def interpret_result(result: object) -> tuple[bool, object, dict[str, str] | None, dict[str, Any], int]:
    """Guest reply -> (ok, data, error, guest meta, status). A `{success, data|error, meta}`
    envelope is honoured; any other JSON value is the data of a successful action."""
    if isinstance(result, dict) and "success" in result:
        meta = result.get("meta")
        guest_meta = meta if isinstance(meta, dict) else {}
        if result.get("success") is True:
            return True, result.get("data"), None, guest_meta, 200
        return False, None, normalise_error(result.get("error")), guest_meta, 422
    return True, result, None, {}, 200
