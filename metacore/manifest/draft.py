"""What a format reader hands to the shared checks: values plus the JSON paths they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .columns import ModelDraft


@dataclass
class ActionDraft:
    path: str
    handler_path: str
    key: str
    model: str
    label: str
    handler_type: str
    function: str | None
    url: str | None
    run_in_tx: Any  # bool, or None for "the handler type's default"
    fields: list[dict[str, Any]]
    modal: str | None
    extras: dict[str, Any]


@dataclass
class ManifestDraft:
    format: Literal["flat", "v3"]
    key: str
    key_path: str
    version: str
    version_path: str
    name: str
    description: str = ""
    kernel: str | None = None
    kernel_path: str = "kernel"
    tenant_isolation: str = "shared"
    models: list[ModelDraft] = field(default_factory=list)
    capabilities: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    permissions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    settings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    navigation: list[dict[str, Any]] = field(default_factory=list)
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    actions: list[ActionDraft] = field(default_factory=list)
    hooks: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    backend: dict[str, Any] | None = None
    backend_path: str = "backend"
    frontend: dict[str, Any] | None = None
    subscriptions: list[Any] = field(default_factory=list)  # v3 contributions.subscriptions (raw)
