"""SandboxService (`get_kernel().sandbox`): run an addon's wasm exports under its limits.

- `call(addon, export, payload, context)`: an operator/API call of a manifest-listed export.
- `run_action(ctx, model, id, key, body)`: a row action, whatever its trigger (wasm, noop,
  webhook: `actions/dispatcher.py`), inside a transaction when `run_in_tx`, so the guest's
  `db_exec` writes and `event_emit` events are kept only when the action succeeds.
- `run_hook(manifest, hook, bundle_dir, settings)`: lifecycle hooks, inside the caller's (the
  installer's) transaction; a failing hook raises, which rolls the operation back.
- `validate_backend(manifest, bundle_dir)`: install-time checks (imports, exports, ABI).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacore import telemetry
from metacore.actions.dispatcher import ActionRequest, Outcome, normalise_error
from metacore.audit.sinks import audit_batch
from metacore.conf import data_dir, metacore_settings
from metacore.context import CallContext
from metacore.errors import InvalidInput, NotFound
from metacore.installer.secrets import unsealed_settings
from metacore.manifest.model import Action, Manifest, Model
from metacore.sandbox.engine import CallStats, CompiledModule, Limits, SandboxEngine
from metacore.sandbox.errors import BadResult, ExportNotAllowed, ModuleRejected, NoBackend, SandboxError
from metacore.sandbox.imports import ImportServices, Invocation
from metacore.schema.registry import InstalledAddon

if TYPE_CHECKING:
    from metacore.actions.dispatcher import ActionDispatcher
    from metacore.permissions.service import PermissionService
    from metacore.store.service import StoreService

LIFECYCLE_EVENTS = ("install", "upgrade", "enable", "disable", "uninstall")
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_MEMORY_MB = 4096  # wasm32's whole address space
MAX_TIMEOUT_MS = 10 * 60 * 1000

_engine: SandboxEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> SandboxEngine:
    """The process-wide engine (one wasmtime Engine, one epoch ticker, one module cache)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = SandboxEngine(data_dir("wasm-cache"))
    return _engine


class _ActionFailed(Exception):
    """Raised inside the action transaction to roll it back; carries the envelope."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class SandboxService:
    def __init__(
        self,
        imports: ImportServices,
        store: StoreService,
        permissions: PermissionService,
        actions: ActionDispatcher,
    ) -> None:
        """`imports`: what the guest's host imports act through (this service audits and
        resolves through the same audit pipe and registry); `actions` runs row actions."""
        self.imports = imports
        self.store = store
        self.permissions = permissions
        self.actions = actions
        # (bundle dir, entry) -> (mtime_ns, size, compiled module, path)
        self._files: dict[tuple[str, str | None], tuple[int, int, CompiledModule, str]] = {}

    @property
    def engine(self) -> SandboxEngine:
        return get_engine()

    # -- modules --------------------------------------------------------------------------

    def limits_for(self, manifest: Manifest) -> Limits:
        """The backend's limits, defaulted from settings and clamped to what wasm32 and the
        host allow (a manifest cannot lift the memory cap with 0 or a negative value)."""
        backend = manifest.backend
        memory = (
            backend.memory_limit_mb
            if backend and backend.memory_limit_mb and backend.memory_limit_mb > 0
            else None
        )
        timeout = backend.timeout_ms if backend and backend.timeout_ms and backend.timeout_ms > 0 else None
        return Limits(
            memory_mb=min(memory or metacore_settings.WASM_DEFAULT_MEMORY_MB, MAX_MEMORY_MB),
            timeout_ms=min(timeout or metacore_settings.WASM_DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS),
            fuel=metacore_settings.WASM_FUEL,
            max_result_bytes=MAX_RESULT_BYTES,
        )

    def module_path(self, manifest: Manifest, bundle_dir: str | os.PathLike[str]) -> Path:
        backend = manifest.backend
        if backend is None or backend.runtime != "wasm" or not backend.entry:
            raise NoBackend(f'addon "{manifest.key}" has no wasm backend')
        root = Path(bundle_dir).resolve()
        path = (root / backend.entry.lstrip("/")).resolve()
        if root not in path.parents:
            raise ModuleRejected(f"backend.entry {backend.entry!r} points outside the bundle")
        if not path.is_file():
            raise ModuleRejected(f"backend.entry {backend.entry!r} is missing from the bundle")
        return path

    def load(self, manifest: Manifest, bundle_dir: str | os.PathLike[str]) -> CompiledModule:
        """The compiled module of the bundle's backend; re-read only when the file changed."""
        key = (str(bundle_dir), manifest.backend.entry if manifest.backend else None)
        cached = self._files.get(key)
        if cached is not None:
            try:
                stat = os.stat(cached[3])
            except OSError:
                stat = None
            if stat is not None and (stat.st_mtime_ns, stat.st_size) == cached[:2]:
                return cached[2]
        path = self.module_path(manifest, bundle_dir)
        stat = path.stat()
        compiled = self.engine.load(path.read_bytes())
        self._files[key] = (stat.st_mtime_ns, stat.st_size, compiled, str(path))
        return compiled

    def validate_backend(
        self, manifest: Manifest, bundle_dir: str | os.PathLike[str]
    ) -> CompiledModule | None:
        """Install-time: the module compiles, imports only metacore_host/WASI, exports
        memory and alloc, and every listed export exists with a supported signature."""
        if manifest.backend is None or manifest.backend.runtime != "wasm":
            return None
        compiled = self.load(manifest, bundle_dir)
        if "alloc" not in compiled.exports:
            raise ModuleRejected(f'addon "{manifest.key}": the module does not export alloc(i32) -> i32')
        for export in manifest.backend.exports:
            if compiled.convention(export) is None:
                problem = (
                    "has an unsupported signature"
                    if export in compiled.exports
                    else "is missing from the module"
                )
                raise ModuleRejected(f'addon "{manifest.key}": backend export {export!r} {problem}')
        return compiled

    def _enabled(self, addon_key: str, context: CallContext) -> InstalledAddon:
        """The addon as the registry serves it (fresh at its revision), enabled, and for a
        call on behalf of `context`'s tenant enabled for that organization."""
        try:
            addon = self.imports.registry.installed(addon_key)
        except NotFound:
            addon = None
        if addon is None or not addon.enabled:
            raise NotFound(f'addon "{addon_key}" is not installed and enabled')
        if context.tenant and not addon.enabled_for(context.tenant):
            raise NotFound(f'addon "{addon_key}" is not installed and enabled for this organization')
        return addon

    # -- calls ----------------------------------------------------------------------------

    def call(
        self, addon_key: str, export: str, payload: object = None, context: CallContext | None = None
    ) -> object:
        """Call a manifest-listed export with `payload` (JSON) and return its decoded result."""
        context = context or CallContext()
        addon = self._enabled(addon_key, context)
        manifest = addon.manifest
        if manifest.backend is None or export not in manifest.backend.exports:
            raise ExportNotAllowed(
                f'export {export!r} is not listed in addon "{addon_key}"\'s backend.exports'
            )
        settings = addon.settings_for(context.tenant)
        return self.invoke(manifest, addon.bundle_path, export, payload, context, settings=settings)

    def call_raw(self, addon_key: str, export: str, data: bytes, context: CallContext | None = None) -> bytes:
        """`call` with the input and output as raw bytes (no JSON on either side)."""
        context = context or CallContext()
        addon = self._enabled(addon_key, context)
        manifest = addon.manifest
        if manifest.backend is None or export not in manifest.backend.exports:
            raise ExportNotAllowed(
                f'export {export!r} is not listed in addon "{addon_key}"\'s backend.exports'
            )
        return self._run(
            manifest, addon.bundle_path, export, data, context, addon.settings_for(context.tenant)
        )

    def invoke(
        self,
        manifest: Manifest,
        bundle_dir: str,
        export: str,
        payload: object,
        context: CallContext,
        *,
        settings: Mapping[str, Any],
        deferred_audit: list[dict[str, Any]] | None = None,
    ) -> object:
        """Run one export on a fresh instance with `payload` as JSON; return the decoded JSON
        result (None when the guest answered nothing). `settings` are the ones the call sees,
        as stored (secrets sealed: unsealed here only). With `deferred_audit`, the call's audit
        record is appended there for the caller to write after its transaction."""
        data = json.dumps(payload if payload is not None else {}, default=str, separators=(",", ":")).encode()
        return decode_result(
            export, self._run(manifest, bundle_dir, export, data, context, settings, deferred_audit)
        )

    def _run(
        self,
        manifest: Manifest,
        bundle_dir: str,
        export: str,
        data: bytes,
        context: CallContext,
        settings: Mapping[str, Any],
        deferred_audit: list[dict[str, Any]] | None = None,
    ) -> bytes:
        compiled = self.load(manifest, bundle_dir)
        invocation = Invocation(
            addon_key=manifest.key,
            export=export,
            services=self.imports,
            manifest=manifest,
            settings=unsealed_settings(dict(settings)),  # the one place secrets are read
            tenant=context.tenant,
            actor=context.actor,
            request_id=context.request_id,
            using=context.using,
        )
        limits = self.limits_for(manifest)
        invocation.deadline = time.monotonic() + limits.timeout_ms / 1000
        stats = CallStats()
        outcome, error = "ok", None
        raw = b""
        # The imports' records and the call's own go to the database in one statement.
        with audit_batch(invocation.using):
            with telemetry.span(
                "metacore.sandbox.call", addon=manifest.key, function=export, tenant=invocation.tenant
            ):
                try:
                    raw = self.engine.invoke(compiled, export, data, limits, invocation, stats)
                except SandboxError as exc:
                    outcome, error = exc.code, exc
                telemetry.set_attributes(outcome=outcome, fuel=stats.fuel_used)
            telemetry.record_sandbox_call(
                addon=manifest.key,
                function=export,
                duration_ms=stats.duration_ms,
                fuel=stats.fuel_used,
                outcome=outcome,
            )
            invocation.flush()
            self._audit(invocation, stats, outcome, error.message if error else "", deferred_audit)
        if error is not None:
            raise error
        return raw

    def _audit(
        self,
        invocation: Invocation,
        stats: CallStats,
        outcome: str,
        reason: str,
        deferred: list[dict[str, Any]] | None = None,
    ) -> None:
        """One `sandbox.call` record; appended to `deferred` instead when the caller writes
        it after its transaction (so a rolled-back action still leaves its record)."""
        record = dict(
            actor=invocation.actor or "",
            tenant=invocation.tenant or "",
            addon=invocation.addon_key,
            target=invocation.export,
            # A call that failed (trap, timeout, denied import...) is no `allow`: `error`, with
            # the failure's code in details.outcome and its message in reason.
            decision="allow" if outcome == "ok" else "error",
            reason=reason,
            request_id=invocation.request_id,
            details={
                "outcome": outcome,
                "duration_ms": round(stats.duration_ms, 3),
                "fuel": stats.fuel_used,
                "memory_bytes": stats.memory_bytes,
                "logs": invocation.logs[:20],
            },
        )
        if deferred is not None:
            deferred.append(record)
        else:
            self.imports.audit.record("sandbox.call", **record)

    # -- lifecycle hooks ------------------------------------------------------------------

    def run_hook(
        self,
        manifest: Manifest | dict[str, Any],
        hook_name: str,
        bundle_dir: str,
        settings: Mapping[str, Any],
        context: CallContext | None = None,
    ) -> object:
        """Run the addon's `on_<event>` export, when it has one, inside the current (the
        installer's) transaction. Raises, so the caller rolls back, when the hook fails or
        answers `{"success": false}`. Returns the hook's result, or None without a hook.
        The module comes from `bundle_dir`; `settings` are the installation's, as stored (the
        installer's: the addon may not be served yet)."""
        event = hook_name[3:] if hook_name.startswith("on_") else hook_name
        if event not in LIFECYCLE_EVENTS:
            raise InvalidInput(f"unknown lifecycle hook {hook_name!r}")
        if not isinstance(manifest, Manifest):
            manifest = Manifest.model_validate(manifest)
        if manifest.backend is None or manifest.backend.runtime != "wasm" or not manifest.backend.entry:
            return None
        compiled = (
            self.validate_backend(manifest, bundle_dir)
            if event in ("install", "upgrade")
            else self.load(manifest, bundle_dir)
        )
        declared = manifest.hooks.get(f"on_{event}") or manifest.hooks.get(event)
        export = declared if declared and "/" not in declared else f"on_{event}"
        if export not in compiled.exports:  # type: ignore[union-attr]  # a wasm backend was checked above
            if declared and "/" not in declared:
                raise ModuleRejected(
                    f'addon "{manifest.key}": hook {hook_name} names export {export!r}, which the module lacks'
                )
            return None
        context = context or CallContext()
        payload = {
            "event": event,
            "addon_key": manifest.key,
            "version": manifest.version,
            "org_id": context.tenant,
        }
        result = self.invoke(manifest, bundle_dir, export, payload, context, settings=settings)
        if isinstance(result, dict) and result.get("success") is False:
            error = normalise_error(result.get("error"))
            raise SandboxError(
                f'addon "{manifest.key}" {export} failed: {error["message"]}',
                errors={"hook": [export], "code": [error["code"]]},
            )
        return result

    # -- row actions ----------------------------------------------------------------------

    def run_action(
        self, ctx: CallContext, model_ref: str, row_id: object, action_key: str, body: object
    ) -> tuple[int, dict[str, Any]]:
        """POST /dynamic/<model>/<id>/action/<key>: returns (http status, envelope)."""
        from metacore.permissions.naming import model_permission

        store = self.store
        resolved = self.imports.registry.resolve(model_ref, organization=ctx.tenant)
        addon_key, spec, manifest = resolved.installation_key, resolved.spec, resolved.manifest
        self.permissions.require(ctx.user, model_permission(addon_key, spec.table, "update"))
        action = find_action(manifest, spec, action_key)
        if action is None:
            raise NotFound(f'model "{spec.key}" has no action "{action_key}"')
        meta: dict[str, object] = {
            "model": spec.key,
            "action": action.key,
            "trigger_type": action.handler_type,
        }
        actions = self.actions
        actions.check(manifest, action)
        args = action_args(action, body)
        row = store.get(ctx, f"{addon_key}.{spec.key}", row_id)
        request = ActionRequest(ctx, self._enabled(addon_key, ctx), manifest, spec, action, row, args)
        try:
            if action.run_in_tx:
                try:
                    with store.tenant_transaction(ctx, resolved):
                        outcome = actions.dispatch(request)
                        if not outcome.ok:
                            raise _ActionFailed(outcome)
                    meta["rolled_back"] = False
                except _ActionFailed as failed:
                    outcome = failed.outcome
                    meta["rolled_back"] = True
            else:
                outcome = actions.dispatch(request)
                meta["rolled_back"] = False
        finally:
            for record in request.deferred_audit:
                self.imports.audit.record(record.pop("kind", "sandbox.call"), **record)
        merged = {**outcome.meta, **meta}
        if outcome.ok:
            return 200, {"success": True, "data": outcome.data, "meta": merged}
        return outcome.status, {"success": False, "error": outcome.error, "meta": merged}


def decode_result(export: str, raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        preview = raw[:80].decode("utf-8", "replace")
        raise BadResult(
            f"{export} returned {len(raw)} bytes that are not JSON (starting {preview!r})"
        ) from None


def find_action(manifest: Manifest, spec: Model, key: str) -> Action | None:
    names = {spec.key.lower(), spec.table.lower()}
    for action in manifest.actions:
        if action.key == key and (action.model or "").lower() in names:
            return action
    return None


def action_args(action: Action, body: object) -> dict[str, Any]:
    """The request body as the action's arguments (compact shape, or `{"payload": ...}`),
    checked against the action's declared required fields."""
    body = body if isinstance(body, dict) else {}
    args = body["payload"] if isinstance(body.get("payload"), dict) else body
    missing = {
        f.key: ["this field is required"]
        for f in action.fields
        if f.required and (args.get(f.key) is None or args.get(f.key) == "")
    }
    if missing:
        raise InvalidInput(f'action "{action.key}": missing {", ".join(missing)}', errors=missing)
    return args
