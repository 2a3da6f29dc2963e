"""Outbound HTTP for addons, guarded against SSRF: `safe_fetch()` and `Egress` (`kernel.egress`).

For the URL and again for every redirect hop:

1. the URL must be http(s), without userinfo;
2. the enforcer checks the addon's `http:fetch` capability for that URL;
3. the host is resolved once through `METACORE['HTTP_RESOLVER']` (getaddrinfo-compatible);
   every answer must be a public unicast address (`blocked_reason()` says why not);
4. the connection goes to the checked address itself (Host header, TLS SNI and certificate
   checks use the host name), so a DNS answer that changes between check and connect
   (rebinding) cannot redirect it; `Host` and the framing headers are the host's alone.

One budget (`timeout`, default `METACORE['HTTP_TIMEOUT_S']`) covers the whole fetch: every
connect, send and read of every hop; a server dripping bytes is cut at the deadline.

`METACORE['HTTP_ALLOWED_NETWORKS']` (default empty) exempts CIDRs from step 3 — meant for
tests against a local server; cloud metadata addresses are refused even then. Proxies from
the environment are never used.

`safe_fetch()` takes the enforcer (step 2) and the audit pipe (blocks are recorded) as
arguments; without them it is the bare guard, usable without the kernel. `Egress` binds the
kernel's two, so services and the sandbox's imports fetch through one object.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal
from urllib.parse import SplitResult, urljoin, urlsplit

from metacore import telemetry
from metacore.conf import metacore_settings
from metacore.context import CallContext
from metacore.errors import InvalidInput
from metacore.security.enforcer import Enforcer, redacted_target
from metacore.security.errors import EgressBlocked, FetchError, FetchTimeout
from metacore.security.patterns import HTTP_FETCH

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
# Global-looking IPv6 ranges that carry an IPv4 address inside (6to4, NAT64): refused, since
# the embedded address may be private.
TUNNEL_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("2002::/16", "64:ff9b::/96", "64:ff9b:1::/48"))
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that say where and how the request travels: the host derives them from the URL and body.
HOST_SET_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade"})


@dataclass
class FetchResponse:
    status: int
    headers: list[tuple[str, str]]  # [(name, value), ...] as received
    body: bytes
    url: str  # the final URL, after redirects
    redirects: list[str] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)


def blocked_reason(address: str) -> str | None:
    """Why an address is no place for an addon to connect to; None for public unicast."""
    ip = ipaddress.ip_address(address)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6 address"
    if ip.version == 6 and any(ip in net for net in TUNNEL_NETWORKS):
        return "IPv6 tunnel address embedding IPv4"
    if _allowed_by_setting(ip):
        return None
    for label in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{label}"):
            return f"{label.replace('_', '-')} address"
    if ip.version == 6 and ip.is_site_local:
        return "site-local address"
    if not ip.is_global:
        return "address not globally routable"
    return None


def _allowed_by_setting(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(
        ip in ipaddress.ip_network(net, strict=False) for net in metacore_settings.HTTP_ALLOWED_NETWORKS
    )


def resolve_checked(host: str, port: int) -> str:
    """Resolve `host` once and return the address to connect to; raises EgressBlocked if any
    answer is blocked (a mix of public and private answers is refused as a whole)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            answers = metacore_settings.HTTP_RESOLVER(host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(ipaddress.ip_address(a[4][0].split("%")[0])) for a in answers))
        if not addresses:
            raise FetchError(f"cannot resolve {host}: no addresses")
    for address in addresses:
        reason = blocked_reason(address)
        if reason:
            raise EgressBlocked(
                f"egress to {host} blocked: {address} is a {reason}",
                errors={"url": [f"{host} -> {address}: {reason}"]},
            )
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a pre-checked address; `self.host` stays the name (Host header)."""

    def __init__(self, host: str, port: int, address: str, *, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a pre-checked address, with SNI and certificate verification for the name."""

    def __init__(self, host: str, port: int, address: str, *, timeout: float) -> None:
        super().__init__(host, port, context=ssl.create_default_context(), timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]  # HTTPSConnection keeps its context there (not in typeshed)


def _check_url(url: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressBlocked(f"only http and https URLs can be fetched, not {url!r}", errors={"url": [url]})
    if parts.username is not None or parts.password is not None:
        raise EgressBlocked("URLs with credentials (user@host) are refused", errors={"url": ["userinfo"]})
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EgressBlocked(f"bad URL {url!r}: {exc}", errors={"url": [url]}) from exc
    if not parts.hostname:
        raise EgressBlocked(f"bad URL {url!r}: no host", errors={"url": [url]})
    return parts, parts.hostname.rstrip("."), port


def _audit_block(
    audit: "AuditPipe",
    addon_key: str | None,
    url: str,
    exc: EgressBlocked,
    context: CallContext | None,
    details: Mapping[str, object] | None,
) -> None:
    context = context or CallContext()
    url = redacted_target(HTTP_FETCH, url)
    audit.record(
        "capability.check",
        actor=context.actor,
        tenant=context.tenant or "",
        request_id=context.request_id,
        addon=addon_key or "",
        target=f"http:fetch {url}",
        decision="deny",
        mode="enforce",
        reason=exc.message,
        details={"capability": "http:fetch", "resource": url, "guard": "ssrf", **(details or {})},
    )


def safe_fetch(
    url: str,
    method: str = "GET",
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    addon_key: str | None = None,
    context: CallContext | None = None,
    *,
    details: Mapping[str, object] | None = None,
    enforcer: Enforcer | None = None,
    audit: "AuditPipe | None" = None,
) -> FetchResponse:
    """Fetch `url` for `addon_key` through the capability check and the SSRF guard.

    Raises CapabilityDenied (enforce mode), EgressBlocked (any mode: the guard is not a
    policy question) or FetchError. A body larger than `max_bytes` is an error, not a
    silent truncation. An addon's fetch needs `enforcer`; `audit` records the guard's blocks.
    Both records name `context`'s actor, tenant and request id, and carry `details`.
    """
    if addon_key is not None and enforcer is None:
        raise TypeError("safe_fetch for an addon needs the enforcer that checks its http:fetch")
    timeout = metacore_settings.HTTP_TIMEOUT_S if timeout is None else timeout
    max_bytes = metacore_settings.HTTP_MAX_BYTES if max_bytes is None else max_bytes
    headers = dict(headers or {})
    reserved = sorted(k for k in headers if k.lower() in HOST_SET_HEADERS)
    if reserved:
        raise InvalidInput(
            f"header(s) {', '.join(reserved)} are set by the host, not by the caller",
            errors={"headers": reserved},
        )
    if isinstance(body, str):
        body = body.encode()
    method = method.upper()
    deadline = time.monotonic() + timeout
    redirects: list[str] = []
    with telemetry.span("metacore.http.fetch", addon=addon_key, method=method) as span_:
        while True:
            parts, host, port = _check_url(url)
            if enforcer is not None and addon_key is not None:
                enforcer.check(addon_key, "http:fetch", url, context, details)
            try:
                address = resolve_checked(host, port)
            except EgressBlocked as exc:
                if audit is not None:
                    _audit_block(audit, addon_key, url, exc, context, details)
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"fetching {url} timed out")
            response = _request(parts, host, port, address, method, body, headers, remaining, max_bytes)
            location = response.header("location")
            if response.status not in REDIRECT_STATUSES or not location:
                response.url, response.redirects = url, redirects
                if span_ is not None:
                    span_.set_attribute("http.response.status_code", response.status)
                return response
            if len(redirects) >= metacore_settings.HTTP_MAX_REDIRECTS:
                raise FetchError(f"too many redirects fetching {redirects[0] if redirects else url}")
            redirects.append(url)
            next_url = urljoin(url, location)
            if urlsplit(next_url).hostname != parts.hostname:
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {
                    k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")
                }
            url = next_url


@dataclass(frozen=True)
class Egress:
    """`safe_fetch` bound to the kernel's enforcer and audit pipe (`kernel.egress`)."""

    enforcer: Enforcer
    audit: "AuditPipe"

    def fetch(
        self,
        url: str,
        method: str = "GET",
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
        addon_key: str | None = None,
        context: CallContext | None = None,
        details: Mapping[str, object] | None = None,
    ) -> FetchResponse:
        return safe_fetch(
            url,
            method,
            body,
            headers,
            timeout,
            max_bytes,
            addon_key,
            context,
            details=details,
            enforcer=self.enforcer,
            audit=self.audit,
        )


class _Budget:
    """Cuts the connection's socket at the deadline, whatever it is doing: a per-read socket
    timeout alone lets a server dripping a byte at a time hold a call forever."""

    def __init__(self, seconds: float) -> None:
        self.sock: socket.socket | None
        self.sock, self.cut = (
            None,
            False,
        )  # the socket itself: http.client drops conn.sock once a response owns it
        self.timer = threading.Timer(max(0.0, seconds), self._cut)
        self.timer.daemon = True

    def _cut(self) -> None:
        self.cut = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "_Budget":
        self.timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self.timer.cancel()
        return False


def _request(
    parts: SplitResult,
    host: str,
    port: int,
    address: str,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> FetchResponse:
    """One request; connect, send and every read share one budget of `timeout` seconds."""
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, address, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    budget = _Budget(timeout)
    try:
        with budget:
            conn.connect()  # bounded by the socket timeout, itself the budget
            budget.sock = conn.sock
            if budget.cut:
                raise OSError("connect outlived the budget")
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(max_bytes + 1)
        if budget.cut:
            raise FetchTimeout(
                f"fetching {parts.scheme}://{host}{path} took longer than its {timeout:.1f} s budget"
            )
        if len(data) > max_bytes:
            raise FetchError(f"response from {host} exceeds {max_bytes} bytes")
        return FetchResponse(resp.status, resp.getheaders(), data, "")
    except (OSError, http.client.HTTPException) as exc:
        if budget.cut or isinstance(exc, TimeoutError):
            raise FetchTimeout(
                f"fetching {parts.scheme}://{host}{path} took longer than its {timeout:.1f} s budget"
            ) from exc
        raise FetchError(f"fetching {parts.scheme}://{host}{path} failed: {exc}") from exc
    finally:
        conn.close()
