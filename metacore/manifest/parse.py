"""`load_manifest`: either manifest format -> one validated, normalised `Manifest`.

    manifest = load_manifest(json_bytes, template_values={"ADDON_KEY": "tickets"})

Every problem is collected and raised together as `ManifestError`, each line naming the
JSON path and the rule (`models[0].columns[3].type: unknown type "blob"`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pydantic

from metacore import limits

from .columns import build_models
from .draft import ManifestDraft
from .errors import ManifestError, Problems, at
from .flat import read_flat
from .identifiers import (
    ACTION_KEY_RE,
    EXPORT_NAME_RE,
    PERMISSION_KEY_RE,
    addon_key_problems,
    lenient_version,
    semver_problems,
    version_range_problems,
)
from .model import Action, ActionField, Backend, Capability, Manifest, Model, Permission
from .v3 import is_v3, read_v3

__all__ = ["ManifestError", "load_manifest", "substitute_templates", "TEMPLATE_DEFAULTS"]

# Placeholders of the SDK's create-addon templates; only UPPER_CASE names are substituted,
# so runtime placeholders such as a tool endpoint's `{{coin_ids}}` are left alone.
TEMPLATE_DEFAULTS = {"ADDON_KEY": "my_addon", "ADDON_DESCRIPTION": "", "AUTHOR": "", "LICENSE": ""}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}")
HANDLER_TYPES = ("wasm", "webhook", "noop")
RUNTIMES = ("wasm", "webhook", "none")


def load_manifest(
    data: dict[str, Any] | str | bytes, *, template_values: dict[str, Any] | None = None
) -> Manifest:
    """Parse and validate a manifest (a dict, or JSON text/bytes). Raises ManifestError."""
    raw = _decode(data)
    problems = Problems()
    document = substitute_templates(raw, template_values)
    draft = read_v3(document, problems) if is_v3(document) else read_flat(document, problems)
    manifest = _assemble(draft, raw, problems)
    problems.raise_if_any()
    return manifest  # type: ignore[return-value]  # None only with problems, and raise_if_any raised them


def _decode(data: dict[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError([f"manifest: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    if isinstance(data, str):
        try:
            data = limits.loads(data)
        except ValueError as exc:
            raise ManifestError([f"manifest: invalid JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise ManifestError([f"manifest: must be a JSON object, not {type(data).__name__}"])
    try:
        limits.check_depth(data)
    except ValueError as exc:
        raise ManifestError([f"manifest: {exc}"]) from None
    bad = list(_non_finite_numbers(data, ""))
    if bad:
        raise ManifestError([f"{path or 'manifest'}: NaN and Infinity are not JSON numbers" for path in bad])
    return data


def _non_finite_numbers(value: Any, path: str) -> Iterator[str]:
    """Paths of NaN/Infinity floats in an already-decoded document (they cannot be stored)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_numbers(item, at(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_numbers(item, at(path, index))


def substitute_templates(document: Any, values: dict[str, Any] | None = None) -> Any:
    """A copy of `document` with `{{ADDON_KEY}}`-style placeholders replaced in every string."""
    merged = dict(TEMPLATE_DEFAULTS)
    merged.update({k: str(v) for k, v in (values or {}).items()})
    merged.setdefault("ADDON_NAME", merged["ADDON_KEY"].replace("_", " ").title())

    def replace(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: merged.get(m.group(1), m.group(0)), text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return replace(value) if "{{" in value else value
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(document)


def _assemble(draft: ManifestDraft, raw: dict[str, Any], problems: Problems) -> Manifest | None:
    if draft.key:
        for rule in addon_key_problems(draft.key):
            problems.add(draft.key_path, rule)
    if draft.version:
        for rule in semver_problems(draft.version):
            problems.add(draft.version_path, rule)
        if lenient_version(draft.version):
            problems.warn(
                draft.version_path,
                f'"{draft.version}" is not MAJOR.MINOR.PATCH; accepted as upstream '
                "does (compared as a version, missing parts are 0)",
            )
    if draft.kernel is not None:
        for rule in version_range_problems(draft.kernel):
            problems.add(draft.kernel_path, rule)
    if draft.tenant_isolation in ("shared", "schema"):
        # Upstream's fail-closed backstop (dynamic/schema.go), in both formats: under shared
        # tenancy (the default) every table is organization-scoped, whatever `org_scoped` says.
        # Schema-per-tenant copies are per organization anyway; they keep the column too, so
        # the store's filter, row-level security and the sandbox's guest policy stay walls.
        for model in draft.models:
            model.org_scoped = True
    models = build_models(draft.key, draft.models, problems)
    capabilities = _capabilities(draft, problems)
    permissions = _permissions(draft, problems)
    settings = _keyed(draft.settings, "key", problems, unique=True)
    tools = _keyed(draft.tools, "id", problems, unique=False)
    backend = _backend(draft, problems)
    actions = _actions(draft, models, backend, problems)
    if problems:
        return None
    try:
        return Manifest(
            format=draft.format,
            key=draft.key,
            name=draft.name,
            version=draft.version,
            description=draft.description,
            kernel=draft.kernel,
            tenant_isolation=draft.tenant_isolation,
            models=models,
            capabilities=capabilities,
            permissions=permissions,
            settings=tuple(settings),
            navigation=tuple(draft.navigation),
            tools=tuple(tools),
            actions=actions,
            hooks=draft.hooks,
            events=tuple(draft.events),
            backend=backend,
            frontend=draft.frontend,
            raw=copy.deepcopy(raw),
            warnings=tuple(problems.warnings),
        )
    except pydantic.ValidationError as exc:  # a reader let a wrong shape through: still no traceback
        for error in exc.errors():
            problems.add(".".join(str(p) for p in error["loc"]), error["msg"])
        return None


def _capabilities(draft: ManifestDraft, problems: Problems) -> tuple[Capability, ...]:
    from metacore.security.patterns import capability_problems

    found = []
    for path, cap in draft.capabilities:
        kind, target, reason = cap.get("kind"), cap.get("target"), cap.get("reason", "")
        if not isinstance(kind, str) or not isinstance(target, str):
            problems.add(path, "needs string kind and target")
            continue
        if not isinstance(reason, str):
            problems.add(at(path, "reason"), "must be a string")
            continue
        rules = capability_problems(kind, target)
        for rule in rules:
            problems.add(path, rule)
        if not rules:
            found.append(Capability(kind=kind, target=target, reason=reason))
    return tuple(found)


def _permissions(draft: ManifestDraft, problems: Problems) -> tuple[Permission, ...]:
    found: dict[str, Permission] = {}
    for path, perm in draft.permissions:
        key = perm.get("key")
        if not isinstance(key, str) or not PERMISSION_KEY_RE.fullmatch(key):
            problems.add(
                at(path, "key"),
                f'invalid permission key {key!r}: lowercase dot-separated words (e.g. "tickets.approve")',
            )
            continue
        if key in found:
            problems.add(at(path, "key"), f'duplicate permission "{key}"')
            continue
        label, description = perm.get("label") or "", perm.get("description") or ""
        if not isinstance(label, str) or not isinstance(description, str):
            problems.add(path, "label and description must be strings")
            continue
        found[key] = Permission(key=key, label=label, description=description)
    return tuple(found.values())


def _keyed(
    items: list[tuple[str, dict[str, Any]]], key: str, problems: Problems, *, unique: bool
) -> list[dict[str, Any]]:
    """Settings and tools need a string key; settings keys are unique (published bundles do
    repeat a tool id, which upstream accepts)."""
    seen: set[object] = set()
    for path, item in items:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            problems.add(at(path, key), "required (a non-empty string)")
        elif unique and value in seen:
            problems.add(at(path, key), f'duplicate "{value}"')
        seen.add(value)
    return [item for _, item in items]


def _backend(draft: ManifestDraft, problems: Problems) -> Backend | None:
    spec = draft.backend
    if spec is None:
        return None
    path = draft.backend_path
    runtime = spec.get("runtime", "wasm")
    if runtime not in RUNTIMES:
        problems.add(at(path, "runtime"), f'unsupported runtime "{runtime}" (use wasm, webhook or none)')
        return None
    entry = spec.get("entry")
    if runtime == "wasm":
        entry = entry or "backend/backend.wasm"
        if not isinstance(entry, str) or entry.startswith("/") or "\\" in entry or ".." in entry.split("/"):
            problems.add(at(path, "entry"), f"invalid entry {entry!r}: a relative path inside the bundle")
            return None
    exports = spec.get("exports") or []
    if not isinstance(exports, list) or not all(
        isinstance(e, str) and EXPORT_NAME_RE.fullmatch(e) for e in exports
    ):
        problems.add(at(path, "exports"), "must be a list of export names (letters, digits, _)")
        return None
    values = {
        "runtime": runtime,
        "entry": entry,
        "exports": tuple(dict.fromkeys(exports)),
        "url": spec.get("url"),
    }
    for name, low, high in (("memory_limit_mb", 1, 4096), ("timeout_ms", 1, 600_000)):
        if spec.get(name) is None:
            continue
        value = spec[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.add(at(path, name), f"must be an integer in {low}..{high}")
            return None
        values[name] = value
    if values["url"] is not None and not isinstance(values["url"], str):
        problems.add(at(path, "url"), "must be a string")
        return None
    return Backend(**values)


def _actions(
    draft: ManifestDraft, models: Sequence[Model], backend: Backend | None, problems: Problems
) -> tuple[Action, ...]:
    tables = {name.lower(): m.table for m in models for name in (m.key, m.table)}
    seen: set[tuple[str | None, str]] = set()
    found = []
    for a in draft.actions:
        ok = True
        if a.key and not ACTION_KEY_RE.fullmatch(a.key):
            problems.add(at(a.path, "key"), f'invalid action key "{a.key}": letters, digits, "_" or "-"')
            ok = False
        table = tables.get(a.model.lower())
        if a.model and table is None:
            problems.add(a.path, f'action "{a.key}" targets unknown model "{a.model}"')
            ok = False
        if (table, a.key) in seen:
            problems.add(at(a.path, "key"), f'duplicate action "{a.key}" on model "{a.model}"')
            ok = False
        seen.add((table, a.key))
        if a.handler_type not in HANDLER_TYPES:
            problems.add(
                at(a.handler_path, "type"),
                f'unknown handler type "{a.handler_type}" (use {", ".join(HANDLER_TYPES)})',
            )
            continue
        run_in_tx = a.handler_type == "wasm" if a.run_in_tx is None else a.run_in_tx
        if not isinstance(run_in_tx, bool):
            problems.add(at(a.path, "run_in_tx"), "must be a boolean")
            ok = False
        elif run_in_tx and a.handler_type != "wasm":
            problems.add(
                at(a.path, "run_in_tx"), f"a {a.handler_type} handler cannot run in the request transaction"
            )
            ok = False
        if a.handler_type == "wasm":
            if not a.function or not EXPORT_NAME_RE.fullmatch(a.function):
                problems.add(at(a.handler_path, "function"), "a wasm handler needs the export name to call")
                ok = False
            elif backend is not None and backend.exports and a.function not in backend.exports:
                problems.add(at(a.handler_path, "function"), f'"{a.function}" is not in backend.exports')
                ok = False
        fields = []
        for index, spec in enumerate(a.fields):
            if spec.get("key") in ("", None) and ("name" in spec or "key" in spec):
                # Upstream accepts `"name": ""`; a field without a name can carry no value.
                problems.warn(at(at(a.path, "fields"), index), "a field with an empty name is ignored")
                continue
            if not isinstance(spec.get("key"), str) or not spec["key"]:
                problems.add(at(at(a.path, "fields"), index), "a field needs a key (or name)")
                ok = False
                continue
            try:
                fields.append(
                    ActionField(
                        **{
                            **spec,
                            "label": str(spec.get("label") or ""),
                            "type": str(spec.get("type") or "text"),
                            "required": bool(spec.get("required", False)),
                        }
                    )
                )
            except pydantic.ValidationError as exc:
                problems.add(at(at(a.path, "fields"), index), exc.errors()[0]["msg"])
                ok = False
        if not ok:
            continue
        extras = {k: v for k, v in a.extras.items() if k not in Action.model_fields and k.isidentifier()}
        try:
            found.append(
                Action(
                    key=a.key,
                    model=table,  # type: ignore[arg-type]  # pydantic rejects a missing model (caught below)
                    label=a.label or a.key,
                    handler_type=a.handler_type,
                    function=a.function,
                    url=a.url,
                    run_in_tx=run_in_tx,
                    fields=tuple(fields),
                    modal=a.modal,
                    **extras,
                )
            )
        except pydantic.ValidationError as exc:
            problems.add(a.path, exc.errors()[0]["msg"])
    return tuple(found)
