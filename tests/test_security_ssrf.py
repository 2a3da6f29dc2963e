"""SSRF guard: address table, DNS answers we control, redirects, pinning, capability checks."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metacore.errors import CapabilityDenied
from metacore.kernel import get_kernel
from metacore.models import AuditRecord
from metacore.security.errors import EgressBlocked, FetchError
from metacore.security.ssrf import blocked_reason, resolve_checked, safe_fetch
from tests.installations import record_installation

pytestmark = pytest.mark.django_db


def fetch(*args, **kwargs):
    """An addon's fetch, as services and the sandbox make it: through the kernel's egress."""
    return get_kernel().egress.fetch(*args, **kwargs)


BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.9.9.9", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("100.64.0.1", "not globally routable"),
    ("192.0.2.10", "private"),
    ("198.18.0.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("2002:a00:1::1", "tunnel"),
    ("64:ff9b::a00:1", "tunnel"),
    ("2001:db8::1", "private"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:81c::200e"]


@pytest.mark.parametrize("address,reason", BLOCKED)
def test_blocked_addresses(address, reason):
    assert reason in (blocked_reason(address) or "")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert blocked_reason(address) is None


def test_allowed_networks_exempt_only_what_they_name_and_never_metadata(settings):
    settings.METACORE = {"HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32", "169.254.0.0/16"]}
    assert blocked_reason("127.0.0.1") is None
    assert blocked_reason("127.0.0.2") == "loopback address"
    assert blocked_reason("10.0.0.1") == "private address"
    assert blocked_reason("169.254.169.254") == "cloud metadata address"


class Resolver:
    """A getaddrinfo stand-in: answers per host name, optionally changing on each call."""

    def __init__(self, answers):
        self.answers = {host: list(a) if isinstance(a, list) else [a] for host, a in answers.items()}
        self.calls = []

    def __call__(self, host, port, *args, **kwargs):
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        options = self.answers[host]
        address = options.pop(0) if len(options) > 1 else options[0]
        addresses = address if isinstance(address, tuple) else (address,)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.mark.parametrize(
    "answer", ["10.0.0.7", "169.254.169.254", "::1", "fe80::1%eth0", ("8.8.8.8", "192.168.0.5")]
)
def test_names_resolving_to_blocked_addresses_are_refused(settings, answer):
    settings.METACORE = {"HTTP_RESOLVER": Resolver({"api.partner.com": answer})}
    with pytest.raises(EgressBlocked, match="egress to api.partner.com blocked"):
        resolve_checked("api.partner.com", 443)


def test_unresolvable_name_is_a_fetch_error(settings):
    settings.METACORE = {"HTTP_RESOLVER": Resolver({})}
    with pytest.raises(FetchError, match="cannot resolve"):
        resolve_checked("nowhere.example.com", 443)


# --- fetches against a local server --------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    routes = {}
    seen = []

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append(
            (self.command, self.path, self.headers.get("host"), body, self.headers.get("authorization"))
        )
        status, headers, payload = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.routes, Handler.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def partner(settings, server):
    """`api.partner.com` resolves to the local server; only 127.0.0.1 is exempt from the guard."""
    resolver = Resolver(
        {
            "api.partner.com": "127.0.0.1",
            "evil.partner.com": "127.0.0.1",
            "cdn.partner.com": "127.0.0.1",
            "internal.partner.com": "10.0.0.9",
        }
    )
    settings.METACORE = {"HTTP_RESOLVER": resolver, "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"]}
    record_installation(
        "crm",
        [
            {"kind": "http:fetch", "target": f"http://api.partner.com:{server}/*"},
            {"kind": "http:fetch", "target": f"http://internal.partner.com:{server}/*"},
            {"kind": "http:fetch", "target": f"http://cdn.partner.com:{server}/*"},
        ],
    )
    return f"http://api.partner.com:{server}", resolver


def test_fetch_goes_to_the_checked_address_with_the_host_name(partner):
    base, resolver = partner
    Handler.routes["/v1/ping"] = (200, {"content-type": "application/json"}, b'{"ok": true}')
    response = fetch(base + "/v1/ping", addon_key="crm")
    assert (response.status, response.body, response.header("Content-Type")) == (
        200,
        b'{"ok": true}',
        "application/json",
    )
    assert Handler.seen[0][2] == base.removeprefix("http://")  # Host header names the host, not the IP
    assert resolver.calls == ["api.partner.com"]


def test_post_body_and_headers(partner):
    base, _ = partner
    Handler.routes["/hook"] = (201, {}, b"created")
    response = fetch(
        base + "/hook", "post", body='{"a": 1}', headers={"Authorization": "Bearer t"}, addon_key="crm"
    )
    assert response.status == 201
    assert (
        Handler.seen[0][0] == "POST"
        and Handler.seen[0][3] == b'{"a": 1}'
        and Handler.seen[0][4] == "Bearer t"
    )


def test_capability_is_checked_before_any_connection(partner):
    base, resolver = partner
    with pytest.raises(CapabilityDenied, match='addon "crm" lacks http:fetch http://evil.partner.com'):
        fetch(base.replace("api.", "evil.") + "/x", addon_key="crm")
    assert resolver.calls == [] and Handler.seen == []


def test_allowed_capability_to_a_private_address_is_still_refused_and_audited(partner):
    base, _ = partner
    with pytest.raises(EgressBlocked, match="10.0.0.9 is a private address"):
        fetch(base.replace("api.", "internal.") + "/x", addon_key="crm")
    record = AuditRecord.objects.get(kind="capability.check")
    assert record.decision == "deny" and record.details["guard"] == "ssrf"


def test_redirect_to_private_or_metadata_is_refused(partner, server):
    base, _ = partner
    for location in (
        "http://169.254.169.254/latest/meta-data/",
        f"http://internal.partner.com:{server}/admin",
        f"http://127.0.0.2:{server}/",
        f"http://[::1]:{server}/",
    ):
        Handler.routes["/go"] = (302, {"location": location}, b"")
        with pytest.raises((EgressBlocked, CapabilityDenied)):
            fetch(base + "/go", addon_key="crm")
    assert [path for _, path, *_ in Handler.seen] == ["/go"] * 4


def test_redirect_outside_the_capability_is_denied(partner):
    base, _ = partner
    Handler.routes["/go"] = (302, {"location": "http://evil.partner.com/steal"}, b"")
    with pytest.raises(CapabilityDenied):
        fetch(base + "/go", addon_key="crm")


def test_allowed_redirects_are_followed_and_rechecked(partner, server):
    base, resolver = partner
    cdn = f"http://cdn.partner.com:{server}"
    Handler.routes["/a"] = (301, {"location": "/b"}, b"")
    Handler.routes["/b"] = (303, {"location": cdn + "/c"}, b"")
    Handler.routes["/c"] = (200, {}, b"done")
    response = fetch(base + "/a", "POST", body=b"x", headers={"Authorization": "secret"}, addon_key="crm")
    assert (response.status, response.body, response.url) == (200, b"done", cdn + "/c")
    assert response.redirects == [base + "/a", base + "/b"]
    assert resolver.calls == ["api.partner.com", "api.partner.com", "cdn.partner.com"]
    assert [(m, p, auth) for m, p, _, _, auth in Handler.seen] == [
        ("POST", "/a", "secret"),
        ("GET", "/b", "secret"),
        ("GET", "/c", None),
    ]


def test_dns_answer_changing_between_hops_is_rechecked(settings, server, partner):
    base, _ = partner
    settings.METACORE = {
        **settings.METACORE,
        "HTTP_RESOLVER": Resolver({"api.partner.com": ["127.0.0.1", "10.0.0.1"]}),
    }
    Handler.routes["/loop"] = (302, {"location": "/loop2"}, b"")
    with pytest.raises(EgressBlocked, match="10.0.0.1"):
        fetch(base + "/loop", addon_key="crm")


def test_connection_is_pinned_to_the_checked_answer(settings, server, partner):
    """A resolver that would answer differently on a second lookup is asked once per hop."""
    base, _ = partner
    resolver = Resolver({"api.partner.com": ["127.0.0.1", "169.254.169.254"]})
    settings.METACORE = {**settings.METACORE, "HTTP_RESOLVER": resolver}
    Handler.routes["/x"] = (200, {}, b"pinned")
    assert fetch(base + "/x", addon_key="crm").body == b"pinned"
    assert resolver.calls == ["api.partner.com"]


def test_limits(partner, settings):
    base, _ = partner
    Handler.routes["/big"] = (200, {}, b"x" * 2048)
    with pytest.raises(FetchError, match="exceeds 1024 bytes"):
        fetch(base + "/big", max_bytes=1024, addon_key="crm")
    Handler.routes["/loop"] = (302, {"location": "/loop"}, b"")
    settings.METACORE = {**settings.METACORE, "HTTP_MAX_REDIRECTS": 2}
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(base + "/loop", addon_key="crm")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://api.partner.com/", "http://user:pw@api.partner.com/", "http:///nohost"],
)
def test_bad_urls_are_refused(partner, url):
    with pytest.raises(EgressBlocked):
        fetch(url, addon_key="crm")


def test_an_addon_fetch_without_the_enforcer_is_refused(partner):
    base, _ = partner
    with pytest.raises(TypeError, match="needs the enforcer"):
        safe_fetch(base + "/x", addon_key="crm")
    assert Handler.seen == []


def test_default_settings_refuse_the_local_server(settings, server):
    settings.METACORE = {"HTTP_RESOLVER": Resolver({"api.partner.com": "127.0.0.1"})}
    with pytest.raises(EgressBlocked, match="loopback"):
        safe_fetch(f"http://api.partner.com:{server}/")
    with pytest.raises(EgressBlocked, match="loopback"):
        safe_fetch(f"http://127.0.0.1:{server}/")
    assert Handler.seen == []


def test_shadow_mode_lets_the_fetch_through_but_records_it(partner):
    base, _ = partner
    get_kernel().enforcer.set_mode("shadow", addon_key="crm")
    Handler.routes["/x"] = (200, {}, b"ok")
    other = base.replace("api.", "evil.")
    assert fetch(other + "/x", addon_key="crm").body == b"ok"
    assert AuditRecord.objects.get(kind="capability.check").decision == "would-deny"


def test_fetch_span(partner, otel):
    base, _ = partner
    Handler.routes["/x"] = (200, {}, b"ok")
    fetch(base + "/x", addon_key="crm")
    (span,) = otel.spans("metacore.http.fetch")
    assert span.attributes["metacore.addon"] == "crm" and span.attributes["http.response.status_code"] == 200


def _ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback")
def test_fetch_over_ipv6_is_pinned_and_checked_too(settings):
    class V6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    Handler.routes, Handler.seen = {"/v6": (200, {}, b"six")}, []
    httpd = V6Server(("::1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        settings.METACORE = {"HTTP_RESOLVER": Resolver({"v6.partner.com": "::1"})}
        with pytest.raises(EgressBlocked, match="::1 is a loopback address"):
            safe_fetch(f"http://v6.partner.com:{port}/v6")
        settings.METACORE = {**settings.METACORE, "HTTP_ALLOWED_NETWORKS": ["::1/128"]}
        assert safe_fetch(f"http://v6.partner.com:{port}/v6").body == b"six"
        assert Handler.seen[0][2] == f"v6.partner.com:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
