"""The capability enforcer: may addon X do `kind` on `target`?

Each addon has its own policy: the capabilities stored on its Installation plus implicit
`db:read`/`db:write` on its own tables (`<key>.*`, i.e. `addon_<key>.*`, and the bare names
of its tables). The mode comes from `EnforcerMode` rows (the addon's override, else the global
row with `addon_key=""`, else `METACORE['ENFORCER_DEFAULT_MODE']`):

- `enforce`: a check that no grant covers raises `CapabilityDenied`;
- `shadow`: it is allowed and recorded as `would-deny`.

The capabilities come from the registry's read model (`InstalledAddon`). Every `check()` reads
the modes and the registry revision in one short query, so a mode flip or an upgrade made by
another process applies before the next check; the compiled policy is rebuilt only when the
addon's read model changed. Denials and would-denies are audited
(`capability.check`) and counted; allows are audited only with `AUDIT_CAPABILITY_ALLOWS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.db import connections, transaction

from metacore import telemetry
from metacore.conf import metacore_settings
from metacore.context import CallContext
from metacore.errors import CapabilityDenied, InvalidInput, NotFound
from metacore.security import patterns
from metacore.security.patterns import HTTP_FETCH, KNOWN_KINDS, NAME_KINDS, SATISFIED_BY, HttpPattern

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.schema.registry import InstalledAddon, ModelRegistry

MODES = ("enforce", "shadow")
ALLOW, DENY, WOULD_DENY = "allow", "deny", "would-deny"


@dataclass(frozen=True, slots=True)
class Decision:
    addon: str
    kind: str
    target: str
    decision: str  # allow | deny | would-deny
    mode: str
    reason: str = ""

    @property
    def allowed(self) -> bool:
        """Whether the caller may go on (true for `would-deny` in shadow mode)."""
        return self.decision != DENY

    def __bool__(self) -> bool:
        return self.allowed


def redacted_target(kind: str, target: str) -> str:
    """What a denial shows and records: an http:fetch URL without userinfo, query or
    fragment (they may carry credentials)."""
    if kind != HTTP_FETCH or not isinstance(target, str):
        return target
    try:
        parts = urlsplit(target)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return target.split("?", 1)[0].split("#", 1)[0]
    if not parts.scheme or not host:
        return target.split("?", 1)[0].split("#", 1)[0]
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _NameGrants:
    """Compiled name patterns of one kind: exact names, `prefix.` prefixes, `.suffix` suffixes."""

    __slots__ = ("any", "exact", "prefixes", "suffixes")

    def __init__(self, kind: str, pattern_list: Iterable[str]) -> None:
        self.any = False
        self.exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        for pattern in pattern_list:
            pattern = patterns.normalize_name(kind, pattern)
            if pattern == "*":
                self.any = True
            elif pattern.endswith(".*"):
                prefixes.append(pattern[:-1])
            elif pattern.startswith("*."):
                suffixes.append(pattern[1:])
            else:
                self.exact.add(pattern)
        self.prefixes, self.suffixes = tuple(prefixes), tuple(suffixes)

    def allows(self, name: str) -> bool:
        if self.any or name in self.exact:
            return True
        for prefix in self.prefixes:
            if name.startswith(prefix) and len(name) > len(prefix):
                return True
        for suffix in self.suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return True
        return False


class Policy:
    """One addon's compiled capabilities. Grants the installer would refuse (malformed,
    over-broad) are ignored, should one ever be stored."""

    def __init__(
        self, addon_key: str, capabilities: Iterable[Mapping[str, Any]], own_tables: Iterable[str] = ()
    ) -> None:
        self.addon = addon_key
        declared: dict[str, list[str]] = {kind: [] for kind in KNOWN_KINDS}
        for cap in capabilities:
            kind, target = cap.get("kind"), cap.get("target")
            if (
                kind in declared
                and isinstance(target, str)
                and not patterns.capability_problems(kind, target)
            ):
                declared[kind].append(target)
        own = [f"{addon_key}.*", *own_tables]
        declared[patterns.DB_READ] += own
        declared[patterns.DB_WRITE] += own
        self.names = {kind: _NameGrants(kind, declared[kind]) for kind in NAME_KINDS}
        self.http: tuple[HttpPattern, ...] = tuple(
            p for p in map(patterns.parse_http_pattern, declared[HTTP_FETCH]) if p is not None
        )
        self._memo: dict[tuple[str, str], bool] = {}

    @classmethod
    def of(cls, addon: InstalledAddon) -> Policy:
        own_tables = {name.lower() for m in addon.manifest.models for name in (m.table, m.key)}
        return cls(addon.key, addon.capabilities, sorted(own_tables))

    MEMO_SIZE = 4096

    def allows(self, kind: str, target: str) -> bool:
        """Memoised per policy (a policy is rebuilt when the addon's capabilities change):
        a repeated check is one dict lookup."""
        key = (kind, target)
        known = self._memo.get(key)
        if known is None:
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            known = self._memo[key] = self.match(kind, target)
        return known

    def match(self, kind: str, target: str) -> bool:
        """The pattern match itself, without the memo."""
        if kind == HTTP_FETCH:
            parsed = patterns.parse_http_target(target)
            return parsed is not None and any(patterns.match_http_parsed(p, parsed) for p in self.http)
        granting = SATISFIED_BY.get(kind)
        if granting is None:
            return False
        name = patterns.normalize_name(kind, target)
        return any(self.names[k].allows(name) for k in granting)


class Enforcer:
    def __init__(self, registry: ModelRegistry, audit: AuditPipe) -> None:
        self.registry = registry
        self.audit = audit
        self._policies: dict[str, tuple[InstalledAddon, Policy]] = {}  # addon key -> (read model, Policy)

    # --- checks -----------------------------------------------------------------------

    def check(
        self,
        addon_key: str,
        kind: str,
        target: str,
        context: CallContext | None = None,
        details: Mapping[str, object] | None = None,
    ) -> Decision:
        """Decide and record; raises `CapabilityDenied` in enforce mode when nothing grants it.
        The audit record names `context`'s actor, tenant and request id, plus `details`."""
        global_mode, addon_mode = self._read_state(addon_key)
        mode = self._effective_mode(addon_mode, global_mode)
        policy = self._policy(addon_key)
        if kind not in KNOWN_KINDS:
            allowed, reason = False, f"unknown capability kind {kind!r}"
        elif policy is None:
            allowed, reason = False, f"addon {addon_key!r} is not installed"
        else:
            allowed, reason = policy.allows(kind, target), ""
        if allowed:
            decision = Decision(addon_key, kind, target, ALLOW, mode)
            if metacore_settings.AUDIT_CAPABILITY_ALLOWS:
                self._audit(decision, context, details)
            return decision
        shown = redacted_target(kind, target)
        message = f'capability denied: addon "{addon_key}" lacks {kind} {shown}'
        decision = Decision(
            addon_key, kind, shown, DENY if mode == "enforce" else WOULD_DENY, mode, reason or message
        )
        self._audit(decision, context, details)
        telemetry.count_capability_decision(addon=addon_key, kind=kind, decision=decision.decision)
        if decision.decision == DENY:
            raise CapabilityDenied(message, errors={"capability": [f"{kind} {shown}"], "addon": [addon_key]})
        return decision

    def allows(self, addon_key: str, kind: str, target: str) -> bool:
        """The policy answer alone: no mode, no audit, no exception (for UIs and planning)."""
        self._read_state(addon_key)
        policy = self._policy(addon_key)
        return policy is not None and policy.allows(kind, target)

    def _policy(self, addon_key: str) -> Policy | None:
        """The addon's policy as of the registry's last refresh; None when not installed."""
        addon = self.registry.last_read(addon_key)
        if addon is None:
            return None
        cached = self._policies.get(addon_key)
        if cached is not None and cached[0] is addon:
            return cached[1]
        policy = Policy.of(addon)
        self._policies[addon_key] = (addon, policy)
        return policy

    def _read_state(self, addon_key: str) -> tuple[str | None, str | None]:
        """(global mode, addon mode), and the registry brought up to date, in one round trip."""
        connection = connections[self.registry.using]
        sql = self._state_sql.get(connection.vendor)
        if sql is None:
            sql = self._state_sql[connection.vendor] = self._build_state_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, [addon_key])
            global_mode, addon_mode, revision = cursor.fetchone()
        self.registry.refresh(revision=revision or 0)
        return global_mode, addon_mode

    _state_sql: dict[str, str] = {}

    def _build_state_sql(self) -> str:
        from metacore.models import EnforcerMode, RegistryState

        qn = connections[self.registry.using].ops.quote_name
        modes, state = qn(EnforcerMode._meta.db_table), qn(RegistryState._meta.db_table)
        mode, addon_key = qn("mode"), qn("addon_key")
        return (
            f"SELECT (SELECT {mode} FROM {modes} WHERE {addon_key} = ''),"
            f" (SELECT {mode} FROM {modes} WHERE {addon_key} = %s),"
            f" (SELECT {qn('revision')} FROM {state} WHERE {qn('id')} = 1)"
        )

    @staticmethod
    def _effective_mode(addon_mode: str | None, global_mode: str | None) -> str:
        mode = addon_mode or global_mode or metacore_settings.ENFORCER_DEFAULT_MODE
        return mode if mode in MODES else "enforce"

    def _audit(
        self, decision: Decision, context: CallContext | None, details: Mapping[str, object] | None
    ) -> None:
        context = context or CallContext()
        self.audit.record(
            "capability.check",
            actor=context.actor,
            tenant=context.tenant or "",
            request_id=context.request_id,
            addon=decision.addon,
            target=f"{decision.kind} {decision.target}",
            decision=decision.decision,
            mode=decision.mode,
            reason=decision.reason,
            details={"capability": decision.kind, "resource": decision.target, **(details or {})},
        )

    # --- modes ------------------------------------------------------------------------

    def modes(self) -> dict[str, object]:
        """`{"default": ..., "global": ..., "effective": ..., "overrides": {addon: mode}}`."""
        from metacore.models import EnforcerMode

        rows = dict(EnforcerMode.objects.values_list("addon_key", "mode"))
        global_mode = rows.pop("", None)
        return {
            "default": metacore_settings.ENFORCER_DEFAULT_MODE,
            "global": global_mode,
            "effective": self._effective_mode(None, global_mode),
            "overrides": dict(sorted(rows.items())),
        }

    def mode_for(self, addon_key: str = "") -> str:
        global_mode, addon_mode = self._read_state(addon_key)
        return self._effective_mode(addon_mode if addon_key else None, global_mode)

    def set_mode(self, mode: str, addon_key: str = "", actor: str = "") -> str:
        """Store the global mode (`addon_key=""`) or an addon's override; audited."""
        from metacore.models import EnforcerMode

        if mode not in MODES:
            raise InvalidInput(
                f"unknown enforcer mode {mode!r} (use enforce or shadow)", errors={"mode": [mode]}
            )
        if addon_key:
            self.require_installed(addon_key)
        with transaction.atomic():
            row = EnforcerMode.objects.select_for_update().filter(addon_key=addon_key).first()
            previous = row.mode if row else None
            EnforcerMode.objects.update_or_create(
                addon_key=addon_key, defaults={"mode": mode, "changed_by": actor}
            )
            self._audit_mode_change(addon_key, previous, mode, actor)
        return mode

    def require_installed(self, addon_key: str) -> None:
        """An override names an installed addon: a malformed key is a 400, an unknown one a 404."""
        from metacore.manifest.identifiers import addon_key_problems

        problems = addon_key_problems(addon_key)
        if problems:
            raise InvalidInput(problems[0], errors={"addon": problems})
        try:
            self.registry.installed(addon_key)
        except NotFound:
            raise NotFound(f"addon {addon_key!r} is not installed", errors={"addon": [addon_key]}) from None

    def clear_mode(self, addon_key: str, actor: str = "") -> bool:
        """Drop an addon's override (it follows the global mode again); audited."""
        from metacore.models import EnforcerMode

        if not addon_key:
            raise InvalidInput("only an addon override can be cleared", errors={"addon": ["required"]})
        with transaction.atomic():
            row = EnforcerMode.objects.select_for_update().filter(addon_key=addon_key).first()
            if row is None:
                return False
            row.delete()
            self._audit_mode_change(addon_key, row.mode, None, actor)
        return True

    def _audit_mode_change(self, addon_key: str, previous: str | None, mode: str | None, actor: str) -> None:
        self.audit.record(
            "enforcer.mode_changed",
            actor=actor,
            addon=addon_key,
            target=addon_key or "global",
            mode=mode or "",
            reason=f"{previous or 'unset'} -> {mode or 'unset'}",
            details={"scope": "addon" if addon_key else "global", "from": previous, "to": mode},
        )
