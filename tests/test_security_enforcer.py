"""The capability enforcer: per-addon policies, modes, audit, flips seen by other processes."""

import os
import subprocess
import sys
import textwrap

import pytest
from django.core.management import CommandError, call_command

from metacore.context import CallContext
from metacore.errors import CapabilityDenied, InvalidInput
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, EnforcerMode, Installation
from tests.installations import record_change, record_installation

pytestmark = pytest.mark.django_db

TICKETS_CAPS = [
    {"kind": "db:read", "target": "users"},
    {"kind": "db:write", "target": "addon_crm.*"},
    {"kind": "event:emit", "target": "ticket.created"},
    {"kind": "event:subscribe", "target": "*.created"},
    {"kind": "http:fetch", "target": "https://api.slack.com/*"},
    {"kind": "http:fetch", "target": "*.stripe.com"},
]


@pytest.fixture
def enforcer():
    return get_kernel().enforcer


@pytest.fixture
def tickets():
    return record_installation("tickets", TICKETS_CAPS, tables=["tickets", "comments"])


CHECKS = [
    # kind, target, allowed
    ("db:read", "users", True),
    ("db:write", "users", False),
    ("db:read", "tickets.tickets", True),  # own namespace, implicit
    ("db:write", "addon_tickets.comments", True),
    ("db:write", "tickets", True),  # own table by bare name
    ("db:read", "Comments", True),
    ("db:read", "crm.contacts", True),  # db:write implies db:read
    ("db:write", "crm.contacts", True),
    ("db:read", "orders.orders", False),
    ("db:read", "addon_orders.orders", False),
    ("event:emit", "ticket.created", True),
    ("event:emit", "ticket.deleted", False),
    ("event:subscribe", "orders.created", True),
    ("event:subscribe", "orders.deleted", False),
    ("http:fetch", "https://api.slack.com/api/chat.postMessage", True),
    ("http:fetch", "https://api.stripe.com/v1/charges", True),
    ("http:fetch", "https://api.evil.com/", False),
    ("http:fetch", "not a url", False),
    ("secrets:read", "anything", False),
]


@pytest.mark.parametrize("kind,target,allowed", CHECKS)
def test_policy_table_in_enforce_mode(enforcer, tickets, kind, target, allowed):
    if allowed:
        decision = enforcer.check("tickets", kind, target)
        assert decision.decision == "allow" and decision.mode == "enforce"
    else:
        with pytest.raises(CapabilityDenied) as info:
            enforcer.check("tickets", kind, target)
        assert info.value.status == 403
        assert f'addon "tickets" lacks {kind} {target}' in info.value.message


def test_each_addon_has_its_own_policy(enforcer, tickets):
    record_installation("orders", [{"kind": "http:fetch", "target": "api.evil.com"}], tables=["orders"])
    assert enforcer.check("orders", "http:fetch", "https://api.evil.com/x")
    assert enforcer.check("orders", "db:write", "orders.orders")
    with pytest.raises(
        CapabilityDenied, match='capability denied: addon "tickets" lacks http:fetch https://api.evil.com/x'
    ):
        enforcer.check("tickets", "http:fetch", "https://api.evil.com/x")
    with pytest.raises(CapabilityDenied):
        enforcer.check("orders", "db:read", "tickets.tickets")


def test_unknown_and_uninstalled_addons_are_denied(enforcer, tickets):
    with pytest.raises(CapabilityDenied):
        enforcer.check("ghost", "db:read", "ghost.things")
    tickets.state = Installation.State.UNINSTALLED
    record_change(tickets)
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "db:read", "tickets.tickets")


def test_denial_is_audited_and_allow_is_not_by_default(enforcer, tickets):
    enforcer.check("tickets", "db:read", "users", CallContext(actor="7", tenant="org-1", request_id="r-1"))
    assert not AuditRecord.objects.filter(kind="capability.check").exists()
    with pytest.raises(CapabilityDenied):
        enforcer.check(
            "tickets", "http:fetch", "https://api.evil.com/", CallContext(actor="7", request_id="r-2")
        )
    record = AuditRecord.objects.get(kind="capability.check")
    assert (record.addon, record.decision, record.mode, record.actor, record.request_id) == (
        "tickets",
        "deny",
        "enforce",
        "7",
        "r-2",
    )
    assert record.target == "http:fetch https://api.evil.com/"
    assert record.details["capability"] == "http:fetch"


def test_allows_are_audited_when_asked(enforcer, tickets, settings):
    settings.METACORE = {"AUDIT_CAPABILITY_ALLOWS": True}
    enforcer.check("tickets", "db:read", "users")
    assert AuditRecord.objects.get(kind="capability.check").decision == "allow"


def test_shadow_allows_and_records_would_deny(enforcer, tickets):
    enforcer.set_mode("shadow")
    decision = enforcer.check("tickets", "http:fetch", "https://api.evil.com/")
    assert decision and decision.decision == "would-deny" and decision.mode == "shadow"
    assert AuditRecord.objects.get(kind="capability.check").decision == "would-deny"


def test_per_addon_override_beats_global(enforcer, tickets):
    record_installation("orders", tables=["orders"])
    enforcer.set_mode("shadow")
    enforcer.set_mode("enforce", addon_key="tickets")
    assert enforcer.check("orders", "event:emit", "x.y").decision == "would-deny"
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "event:emit", "x.y")
    assert enforcer.modes() == {
        "default": "enforce",
        "global": "shadow",
        "effective": "shadow",
        "overrides": {"tickets": "enforce"},
    }
    assert enforcer.clear_mode("tickets")
    assert enforcer.check("tickets", "event:emit", "x.y").decision == "would-deny"


def test_default_mode_comes_from_settings(enforcer, tickets, settings):
    settings.METACORE = {"ENFORCER_DEFAULT_MODE": "shadow"}
    assert enforcer.check("tickets", "event:emit", "x.y").decision == "would-deny"
    assert enforcer.mode_for("tickets") == "shadow"


def test_mode_change_is_validated_and_audited(enforcer, tickets):
    with pytest.raises(InvalidInput):
        enforcer.set_mode("lenient")
    enforcer.set_mode("shadow", actor="admin")
    enforcer.set_mode("enforce", addon_key="tickets", actor="admin")
    records = list(AuditRecord.objects.filter(kind="enforcer.mode_changed").order_by("timestamp", "id"))
    assert [(r.target, r.details["from"], r.details["to"], r.actor) for r in records] == [
        ("global", None, "shadow", "admin"),
        ("tickets", None, "enforce", "admin"),
    ]


def test_capability_change_applies_at_next_check(enforcer, tickets):
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "http:fetch", "https://api.new.com/")
    tickets.capabilities = TICKETS_CAPS + [{"kind": "http:fetch", "target": "api.new.com"}]
    tickets.revision += 1
    record_change(tickets)
    assert enforcer.check("tickets", "http:fetch", "https://api.new.com/")


def test_denials_are_counted_in_metrics(enforcer, tickets, otel):
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "event:emit", "x.y")
    enforcer.set_mode("shadow")
    enforcer.check("tickets", "event:emit", "x.y")
    points = otel.metric_points("metacore.capability.denials")
    assert {(p.attributes["metacore.decision"], p.value) for p in points} == {("deny", 1), ("would-deny", 1)}


# --- the management command -----------------------------------------------------------


def test_command_shows_and_flips_modes(capsys, tickets):
    call_command("metacore_enforcer")
    assert "global: enforce (default)" in capsys.readouterr().out
    call_command("metacore_enforcer", "--mode", "shadow")
    call_command("metacore_enforcer", "--mode", "enforce", "--addon", "tickets")
    out = capsys.readouterr().out
    assert "global mode: shadow" in out and "tickets mode: enforce" in out
    assert dict(EnforcerMode.objects.values_list("addon_key", "mode")) == {"": "shadow", "tickets": "enforce"}
    call_command("metacore_enforcer")
    out = capsys.readouterr().out
    assert "global: shadow" in out and "tickets: enforce" in out
    call_command("metacore_enforcer", "--addon", "tickets")
    assert capsys.readouterr().out == "tickets: enforce\n"
    call_command("metacore_enforcer", "--clear", "--addon", "tickets")
    assert not EnforcerMode.objects.filter(addon_key="tickets").exists()
    call_command("metacore_enforcer", "--addon", "tickets")
    assert capsys.readouterr().out.endswith("tickets: shadow\n")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mode", "lenient"], "invalid choice"),
        (["--clear"], "--clear needs --addon"),
        (["--clear", "--addon", "nobody"], "no override"),
        (["--mode", "shadow", "--addon", "nobody"], "addon 'nobody' is not installed"),
        (["--mode", "shadow", "--addon", "../x"], "invalid addon key"),
    ],
)
def test_command_rejects_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("metacore_enforcer", *args)


# --- another process ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_flip_in_another_process_applies_before_the_next_check(enforcer):
    record_installation("tickets", tables=["tickets"])
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "event:emit", "x.y")
    with OtherProcess() as other:
        other.run("get_kernel().enforcer.set_mode('shadow', addon_key='tickets')")
        assert enforcer.check("tickets", "event:emit", "x.y").decision == "would-deny"
        other.run("call_command('metacore_enforcer', '--mode', 'enforce', '--addon', 'tickets')")
        with pytest.raises(CapabilityDenied):
            enforcer.check("tickets", "event:emit", "x.y")


@pytest.mark.django_db(transaction=True)
def test_capability_change_in_another_process_applies_at_the_next_check(enforcer):
    record_installation("tickets", tables=["tickets"])
    with pytest.raises(CapabilityDenied):
        enforcer.check("tickets", "event:emit", "ticket.created")
    with OtherProcess() as other:
        other.run(
            "from metacore.models import Installation; from tests.installations import record_change;"
            " row = Installation.objects.get(key='tickets');"
            " row.capabilities = [{'kind': 'event:emit', 'target': 'ticket.*'}]; record_change(row)"
        )
        assert enforcer.check("tickets", "event:emit", "ticket.created").decision == "allow"


class OtherProcess:
    """A second Python process on the same (test) database, running one statement per call."""

    SCRIPT = textwrap.dedent("""
        import sys, django
        django.setup()
        from django.core.management import call_command
        from metacore.kernel import get_kernel
        for line in sys.stdin:
            exec(line)
            print("done", file=sys.stderr, flush=True)
    """)

    def __enter__(self):
        from django.db import connection

        env = dict(os.environ, DJANGO_SETTINGS_MODULE="sandbox_project.settings")
        db = connection.settings_dict
        if connection.vendor == "sqlite":
            env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
        else:
            env["DATABASE_URL"] = (
                f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
            )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def run(self, statement):
        self.proc.stdin.write(statement + "\n")
        self.proc.stdin.flush()
        line = self.proc.stderr.readline()
        assert line.strip() == "done", (
            f"the other process failed: {line}{self.proc.stderr.read() if line else ''}"
        )

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_denied_urls_are_recorded_without_credentials(enforcer, tickets):
    url = "https://user:secret@api.evil.com:8443/steal?token=abc#frag"
    with pytest.raises(CapabilityDenied) as info:
        enforcer.check("tickets", "http:fetch", url)
    assert "secret" not in info.value.message and "token" not in info.value.message
    record = AuditRecord.objects.get(kind="capability.check")
    assert record.target == "http:fetch https://api.evil.com:8443/steal"
    assert "abc" not in str(record.details)


def test_stored_grants_the_installer_would_refuse_are_ignored(enforcer):
    record_installation(
        "legacy",
        [
            {"kind": "http:fetch", "target": "*"},
            {"kind": "event:emit", "target": "*"},
            {"kind": "event:emit", "target": "a.*.b"},
            {"kind": "db:read", "target": "ord*"},
        ],
    )
    for kind, target in [
        ("http:fetch", "https://any.where/"),
        ("event:emit", "x.y"),
        ("event:emit", "a.*.b"),
        ("db:read", "ord*"),
    ]:
        with pytest.raises(CapabilityDenied):
            enforcer.check("legacy", kind, target)


@pytest.mark.parametrize(
    "subscription,allowed",
    [
        ("orders.created", True),
        ("orders.line.*", False),
        ("*.created", True),
        ("a.b.created", True),
        ("*", False),
        ("*.deleted", False),
    ],
)
def test_a_pattern_target_is_allowed_only_inside_the_grant(enforcer, tickets, subscription, allowed):
    """Hub subscriptions may be patterns: covered when they denote a subset of `*.created`."""
    assert enforcer.allows("tickets", "event:subscribe", subscription) is allowed
