"""metacore's own tables. Addon tables are not here: they are built at runtime by `schema/`."""

import uuid

from django.conf import settings
from django.db import models

from metacore.schema.naming import schema_name


class InstallationQuerySet(models.QuerySet["Installation"]):
    def active(self) -> "InstallationQuerySet":
        """Installed (enabled or disabled), not uninstalled."""
        return self.exclude(state=Installation.State.UNINSTALLED)

    def enabled(self) -> "InstallationQuerySet":
        return self.filter(state=Installation.State.ENABLED)

    def locked(self, key: str) -> "Installation | None":
        """The row of `key` locked for this transaction (SELECT ... FOR UPDATE), or None."""
        return self.select_for_update().filter(key=key).first()


class Installation(models.Model):
    """One addon package on this host: its code, manifest and schema version, upgraded once
    for every organization. When `every_organization` is set it is also the host-wide
    installation (installed without naming an organization): its state, settings and secret
    are those of every organization that has no `OrganizationInstallation` of its own.
    Kept (state `uninstalled`) when uninstalled without dropping data, so a reinstall adopts
    its tables again."""

    class State(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"
        UNINSTALLED = "uninstalled"

    key = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ENABLED)
    manifest = models.JSONField(help_text="normalised Manifest snapshot (Manifest.model_dump)")
    capabilities = models.JSONField(default=list, help_text="the addon's granted capabilities")
    settings = models.JSONField(default=dict, blank=True)
    credentials = models.JSONField(default=dict, blank=True)
    selected_tools = models.JSONField(default=list, blank=True)
    secret_hash = models.CharField(max_length=128, blank=True)
    secret_encrypted = models.TextField(blank=True)
    bundle_path = models.CharField(max_length=500, blank=True, help_text="extracted bundle directory")
    bundle_sha256 = models.CharField(max_length=64, blank=True)
    revision = models.PositiveIntegerField(default=1, help_text="bumped on every schema change")
    every_organization = models.BooleanField(
        default=True,
        help_text="installed for every organization, present and future (installed without naming one)",
    )
    installed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstallationQuerySet.as_manager()

    class Meta:
        ordering = ["key"]
        permissions = [("manage_addons", "Can install, upgrade and configure addons")]

    def __str__(self):
        return f"{self.key} {self.version} ({self.state})"


class OrganizationInstallation(models.Model):
    """One organization's installation of an addon package: whether it uses it (`enabled`),
    its settings (over the host-wide ones) and its own secret. Present when the
    organization installed the addon itself, or when it disabled or configured a host-wide
    one for itself; without it an organization has exactly the host-wide installation."""

    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="organizations")
    organization = models.CharField(max_length=64, db_index=True)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True, help_text="this organization's values")
    secret_hash = models.CharField(max_length=128, blank=True)
    secret_encrypted = models.TextField(blank=True)
    installed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["installation__key", "organization"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "installation"], name="metacore_org_install_once")
        ]

    def __str__(self):
        return (
            f"{self.installation.key} for {self.organization} ({'enabled' if self.enabled else 'disabled'})"
        )


class TenantSchema(models.Model):
    """One organization's copy of a `schema-per-tenant` addon's tables (PostgreSQL schema
    `addon_<space>`, SQLite tables `addon_<space>__<table>`). Upgrades, uninstalls and the
    registry find every copy here; the unique `space` refuses two organizations whose ids
    share their first 8 hex digits (and a copy named like another addon's schema)."""

    addon_key = models.CharField(max_length=64, db_index=True)
    organization_id = models.UUIDField()
    space = models.CharField(max_length=64, unique=True, help_text="<key>_<first 8 hex of the organization>")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["addon_key", "space"]
        constraints = [
            models.UniqueConstraint(
                fields=["addon_key", "organization_id"], name="metacore_tenant_schema_once"
            )
        ]

    def __str__(self):
        return f"{self.addon_key} for {self.organization_id} ({schema_name(self.space)})"


class InstallJournal(models.Model):
    """One line per lifecycle operation, successful or not (failed ones are written after
    the rollback, outside the failed transaction)."""

    addon_key = models.CharField(max_length=64, db_index=True)
    organization = models.CharField(max_length=64, blank=True, help_text="empty: host-wide")
    operation = models.CharField(max_length=16)  # install, upgrade, uninstall, enable, disable
    from_version = models.CharField(max_length=64, blank=True)
    to_version = models.CharField(max_length=64, blank=True)
    ok = models.BooleanField(default=True)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "install journal"


class AppliedMigration(models.Model):
    """A bundle SQL migration that ran (or was skipped, with the reason) for an addon."""

    addon_key = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    checksum = models.CharField(max_length=64)
    status = models.CharField(max_length=16, default="applied")  # applied | skipped
    reason = models.TextField(blank=True)
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = [("addon_key", "name")]


class RegistryState(models.Model):
    """Singleton row: `revision` is bumped in the same transaction as every schema change, so
    any process learns of an install/upgrade by one cheap read; `access_revision` likewise for
    every change to tokens, users, grants and tenant memberships (metacore.permissions.access)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    revision = models.PositiveBigIntegerField(default=0)
    access_revision = models.PositiveBigIntegerField(default=0)


class EnforcerMode(models.Model):
    """Capability enforcer mode: the row with an empty `addon_key` is the global mode, others
    are per-addon overrides."""

    class Mode(models.TextChoices):
        SHADOW = "shadow"
        ENFORCE = "enforce"

    addon_key = models.CharField(max_length=64, unique=True, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=150, blank=True)


class TenantMembership(models.Model):
    """Default tenant source: the organization a user acts for (see TENANT_RESOLVER)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="metacore_membership"
    )
    organization_id = models.UUIDField(default=uuid.uuid4)


class AuditRecord(models.Model):
    """Database audit sink: one row per audit event (schema in docs/audit.md)."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True)
    schema_version = models.PositiveSmallIntegerField(default=1)
    timestamp = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=40, db_index=True)
    actor = models.CharField(max_length=150, blank=True)
    tenant = models.CharField(max_length=64, blank=True, db_index=True)
    addon = models.CharField(max_length=64, blank=True, db_index=True)
    target = models.CharField(max_length=300, blank=True)
    decision = models.CharField(max_length=12, blank=True)  # allow | deny | would-deny
    mode = models.CharField(max_length=8, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]


class WebhookNonce(models.Model):
    """A signed webhook nonce already accepted: the unique constraint refuses a replay in any
    process until `expires_at`, when the timestamp check takes over."""

    scope = models.CharField(max_length=64)  # usually the addon key
    nonce = models.CharField(max_length=128)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "nonce"], name="metacore_webhook_nonce_once")]


from metacore.hub.models import HubConnection  # noqa: E402,F401  (registered here)
from metacore.integrations.models import EventLogEntry, ScheduleRun, WebhookDelivery, WebhookSubscription  # noqa: E402,F401  (registered here)
