"""ToolService (`get_kernel().tools`): the tool registry and its dispatcher (upstream `tool/`).

The registry is synced from the manifests of enabled addons in the registry's read model
(`tools[]`, flat, and v3 `contributions.tools[]`), rebuilt when the registry revision moves,
so every process sees the same tools; an installation's non-empty `selected_tools` narrows its offer.

Input is validated as upstream's `tool/validator.go`: per declared parameter, a missing or
blank value takes `default_value` or is `required`; the string form is trimmed and
normalised (`uppercase`, `lowercase`, `trim`, `alphanumeric`, `order_id`), type-checked
(`string`, `number`, `boolean`, `date` RFC 3339 or YYYY-MM-DD, `email`, `phone`), matched
against `validation` (a regex), and coerced (numbers and booleans). Undeclared parameters
are dropped. A v3 `input_schema` in JSON Schema form (`{type: object, properties,
required}`) is read as that parameter list.

Dispatch: a `handler: {type: wasm, function}` calls the export; anything else POSTs (or the
tool's `method`) upstream's body `{addon_key, tool_id, installation_id, org_id, parameters}`
to `endpoint` / `handler.url` (relative to `backend.url`), signed, through the SSRF guard and
the addon's `http:fetch` capability. The answer is upstream's `Result`:
`{success, data, error, metadata}`.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from metacore.context import CallContext
from metacore.errors import InvalidInput, NotFound
from metacore.integrations import outbound
from metacore.security.errors import FetchError

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.sandbox.service import SandboxService
    from metacore.schema.registry import ModelRegistry
    from metacore.security.ssrf import Egress

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9\s\-()]{6,}$")
NORMALIZE: dict[str, Callable[[str], str]] = {
    "uppercase": str.upper,
    "lowercase": str.lower,
    "trim": str.strip,
    "alphanumeric": lambda s: "".join(c for c in s if c.isascii() and c.isalnum()),
    "order_id": lambda s: s.replace(" ", "").upper(),
}
JSON_SCHEMA_TYPES: dict[object, str] = {
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "string": "string",
}


class ToolFailed(Exception):
    """The tool could not be reached (upstream answers 502)."""


@dataclass(frozen=True)
class Tool:
    addon_key: str
    id: str
    definition: dict[str, Any]
    params: tuple[dict[str, Any], ...]  # normalised ToolInputParam dicts
    installation_id: int
    backend_url: str | None = None
    handler: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.definition,
            "id": self.id,
            "input_schema": list(self.params),
            "addon_key": self.addon_key,
        }


def input_params(schema: object) -> tuple[dict[str, Any], ...]:
    """Upstream's parameter list, from itself or from a JSON Schema object."""
    if isinstance(schema, list):
        return tuple(p for p in schema if isinstance(p, dict) and isinstance(p.get("name"), str))
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required") or [])
        return tuple(
            {
                "name": name,
                "type": JSON_SCHEMA_TYPES.get((spec or {}).get("type"), "string"),
                "description": str((spec or {}).get("description") or ""),
                "required": name in required,
            }
            for name, spec in schema["properties"].items()
        )
    return ()


def _as_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _type_problem(kind: str | None, s: str) -> str | None:
    if kind in ("", "string", None):
        return None
    if kind == "number":
        try:
            float(s)
        except ValueError:
            return f"expected number, got {s!r}"
    elif kind == "boolean":
        if s.lower() not in ("1", "t", "true", "0", "f", "false"):
            return f"expected boolean, got {s!r}"
    elif kind == "date":
        try:
            datetime.fromisoformat(s.replace("Z", "+00:00")) if "T" in s else date.fromisoformat(s)
        except ValueError:
            return f"expected RFC3339 or YYYY-MM-DD date, got {s!r}"
    elif kind == "email" and not EMAIL_RE.match(s):
        return f"invalid email {s!r}"
    elif kind == "phone" and not PHONE_RE.match(s):
        return f"invalid phone {s!r}"
    return None


def _coerce(kind: str | None, s: str) -> str | int | float | bool:
    if kind == "number":
        number = float(s)
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        return s.lower() in ("1", "t", "true")
    return s


def validate(
    params: Iterable[dict[str, Any]], raw: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(cleaned values, {param: [reason]}) as upstream's tool.Validate."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for p in params:
        name = p["name"]
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if p.get("default_value"):
                value = p["default_value"]
            elif p.get("required"):
                errors[name] = ["required"]
                continue
            else:
                continue
        s = _as_string(value).strip()
        normalize = NORMALIZE.get(p.get("normalize") or "")
        s = normalize(s) if normalize else s
        problem = _type_problem(p.get("type"), s)
        if problem is None and p.get("validation"):
            try:
                if not re.search(p["validation"], s):
                    problem = "does not match pattern"
            except re.error as exc:
                problem = f"invalid validation regex: {exc}"
        if problem:
            errors[name] = [problem]
            continue
        cleaned[name] = _coerce(p.get("type"), s)
    return cleaned, errors


def unpack(status: int, body: bytes) -> dict[str, Any]:
    """An addon's answer as upstream's Result."""
    ok = 200 <= status < 300
    if not ok:
        return {
            "success": False,
            "error": f"addon returned {status}: {body[:500].decode('utf-8', 'replace')}",
        }
    if not body.strip():
        return {"success": True}
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"success": True, "data": body.decode("utf-8", "replace")}
    if isinstance(decoded, dict) and ({"success", "error", "metadata"} & decoded.keys()):
        result = {
            "success": bool(decoded["success"]) if "success" in decoded else not decoded.get("error"),
            "data": decoded.get("data"),
        }
        for name in ("error", "metadata"):
            if decoded.get(name):
                result[name] = decoded[name]
        return result
    return {"success": True, "data": decoded}


class ToolService:
    def __init__(
        self, model_registry: ModelRegistry, sandbox: SandboxService, egress: Egress, audit: AuditPipe
    ) -> None:
        self.model_registry = model_registry
        self.sandbox = sandbox
        self.egress = egress
        self.audit = audit
        # (registry revision, {(addon, tool id): Tool})
        self._registry: tuple[int | None, dict[tuple[str, str], Tool]] = (None, {})

    def registry(self) -> dict[tuple[str, str], Tool]:
        revision = self.model_registry.revision
        if self._registry[0] != revision:
            tools = {}
            for addon in self.model_registry.installed_addons():
                if not addon.enabled:
                    continue
                backend_url = addon.manifest.backend.url if addon.manifest.backend else None
                for definition in addon.manifest.tools:
                    tool_id = definition.get("id") or definition.get("key")
                    if not isinstance(tool_id, str) or (
                        addon.selected_tools and tool_id not in addon.selected_tools
                    ):
                        continue
                    handler = definition["handler"] if isinstance(definition.get("handler"), dict) else {}
                    tools[(addon.key, tool_id)] = Tool(
                        addon.key,
                        tool_id,
                        definition,
                        input_params(definition.get("input_schema")),
                        addon.id,
                        backend_url,
                        handler,
                    )
            self._registry = (revision, tools)
        return self._registry[1]

    def list(self, addon_key: str | None = None) -> builtins.list[Tool]:
        return [t for (addon, _), t in sorted(self.registry().items()) if addon_key in (None, addon)]

    def execute(
        self, addon_key: str, tool_id: str, parameters: object, context: CallContext
    ) -> dict[str, Any]:
        """Validate and run one tool; raises InvalidInput (400, per field), NotFound, or
        ToolFailed when the addon cannot be reached."""
        tool = self.registry().get((addon_key, tool_id))
        if tool is None:
            raise NotFound(f'addon "{addon_key}" has no tool "{tool_id}"')
        if not isinstance(parameters, dict):
            raise InvalidInput("parameters must be an object", errors={"parameters": ["must be an object"]})
        cleaned, errors = validate(tool.params, parameters)
        if errors:
            summary = "; ".join(f"{name}: {reasons[0]}" for name, reasons in errors.items())
            raise InvalidInput(f"invalid params: {summary}", errors=errors)
        outcome = "failed"
        try:
            result = self._dispatch(tool, cleaned, context)
            outcome = "ok" if result.get("success") else "declined"
            return result
        finally:
            self.audit.record(
                "tool.execute",
                actor=context.actor,
                tenant=context.tenant or "",
                addon=addon_key,
                target=tool_id,
                decision="allow",
                request_id=context.request_id,
                details={"outcome": outcome, "parameters": sorted(cleaned)},
            )

    def _dispatch(self, tool: Tool, cleaned: dict[str, Any], context: CallContext) -> dict[str, Any]:
        from metacore.sandbox.errors import SandboxError

        body = {
            "addon_key": tool.addon_key,
            "tool_id": tool.id,
            "installation_id": str(tool.installation_id),
            "org_id": context.tenant,
            "parameters": cleaned,
        }
        if tool.handler.get("type") == "wasm":
            try:
                answer = self.sandbox.call(
                    tool.addon_key, tool.handler.get("function") or tool.id, body, context
                )
            except SandboxError as exc:
                return {"success": False, "error": exc.message}
            return unpack(200, json.dumps(answer).encode()) if answer is not None else {"success": True}
        endpoint = tool.definition.get("endpoint") or tool.handler.get("url")
        if not isinstance(endpoint, str) or not endpoint:
            raise InvalidInput(f'tool "{tool.id}" declares no endpoint', errors={"endpoint": ["missing"]})
        url = outbound.resolve_url(endpoint, tool.backend_url)
        addon = self.model_registry.installed(tool.addon_key)
        timeout = tool.definition.get("timeout")
        try:
            sent = outbound.send(
                self.egress,
                url,
                json.dumps(body, default=str).encode(),
                secret=outbound.addon_secret(addon, context.tenant),
                installation_id=addon.id,
                event=f"tool:{tool.id}",
                tenant=context.tenant,
                addon_key=addon.key,
                context=context,
                method=str(tool.definition.get("method") or "POST").upper(),
                timeout=float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None,
            )
        except FetchError as exc:
            raise ToolFailed(exc.message) from exc
        return unpack(sent.response.status, sent.response.body)
