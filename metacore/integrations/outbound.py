"""One signed outbound webhook call, as upstream's `security/webhookdispatch.go` sends it.

Headers::

    Content-Type:               application/json
    X-Metacore-Installation-ID: <installation id>
    X-Metacore-Event:           <event>            (when there is one)
    X-Metacore-Host:            METACORE['WEBHOOK_HOST_NAME'] (default "metacore")
    X-Metacore-Tenant:          <organization id>  (when there is one)
    X-Metacore-Timestamp / X-Metacore-Nonce / X-Metacore-Signature  (when a secret is known)

The signature is upstream's `Signer.SignWithNonce`: `sha256=<hex HMAC-SHA256(secret,
"<ts>.<METHOD>.<path[?query]>.<nonce>.<sha256 hex of body>")>` (`installer/webhooks.py`).
Like upstream, a call without a recoverable secret goes out unsigned. Every call goes
through the kernel's `Egress` (`safe_fetch`): the SSRF guard always, the addon's `http:fetch` capability when
`addon_key` is given, and one total time budget (default 15 s, upstream's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from metacore.conf import metacore_settings
from metacore.errors import InvalidInput
from metacore.installer.webhooks import sign_request
from metacore.security.ssrf import Egress, FetchResponse

if TYPE_CHECKING:
    from metacore.context import CallContext
    from metacore.models import Installation, OrganizationInstallation
    from metacore.schema.registry import InstalledAddon

INSTALLATION_HEADER = "X-Metacore-Installation-ID"
EVENT_HEADER = "X-Metacore-Event"
HOST_HEADER = "X-Metacore-Host"
TENANT_HEADER = "X-Metacore-Tenant"


@dataclass
class Sent:
    response: FetchResponse
    duration_ms: float
    signed: bool


def signed_path(url: str) -> str:
    """The part of the URL that is signed: path (default `/`) plus `?query`, as upstream."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def resolve_url(url: str, base: str | None) -> str:
    """An absolute webhook URL; a relative one (`/webhooks/x`) is joined to `base`
    (the manifest's `backend.url`)."""
    if urlsplit(url).scheme:
        return url
    if not base:
        raise InvalidInput(
            f"webhook URL {url!r} is relative and the addon declares no backend.url", errors={"url": [url]}
        )
    return urljoin(base.rstrip("/") + "/", url.lstrip("/"))


def addon_secret(addon: InstalledAddon, organization: object = None) -> str | None:
    """The secret a call for `organization` is signed with: that organization's own
    installation secret when it has one (issued when it installed the addon itself), else the
    host-wide installation's; None when neither can be recovered (no master key). Read from
    the rows by the addon's id: secrets stay out of the registry's read model."""
    from metacore.errors import Conflict
    from metacore.installer.secrets import reveal_secret
    from metacore.models import Installation, OrganizationInstallation

    installation = Installation.objects.filter(pk=addon.id).first()
    if installation is None:
        return None
    holder: Installation | OrganizationInstallation = installation
    if organization:
        own = (
            OrganizationInstallation.objects.filter(installation=installation, organization=str(organization))
            .exclude(secret_encrypted="")
            .first()
        )
        holder = own or installation
    if not holder.secret_encrypted:
        return None
    try:
        return reveal_secret(holder)
    except Conflict:
        return None


def send(
    egress: Egress,
    url: str,
    body: bytes,
    *,
    secret: str | None = None,
    installation_id: object = "",
    event: str = "",
    tenant: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    addon_key: str | None = None,
    context: CallContext | None = None,
    method: str = "POST",
) -> Sent:
    """POST (or `method`) `body` to `url`, signed with `secret` when given. Raises what `egress.fetch` raises
    (EgressBlocked, CapabilityDenied, FetchError); any HTTP status is returned."""
    headers = {"Content-Type": "application/json"}
    if installation_id:
        headers[INSTALLATION_HEADER] = str(installation_id)
    if event:
        headers[EVENT_HEADER] = event
    host_name = metacore_settings.WEBHOOK_HOST_NAME
    if host_name:
        headers[HOST_HEADER] = host_name
    if tenant:
        headers[TENANT_HEADER] = str(tenant)
    headers.update({k: v for k, v in (extra_headers or {}).items() if v})
    if secret:
        headers.update(sign_request(secret, method, signed_path(url), body))
    timeout = metacore_settings.WEBHOOK_TIMEOUT_S if timeout is None else timeout
    started = time.monotonic()
    response = egress.fetch(
        url, method, body=body, headers=headers, timeout=timeout, addon_key=addon_key, context=context
    )
    return Sent(response, (time.monotonic() - started) * 1000, bool(secret))
