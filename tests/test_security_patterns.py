"""The capability pattern language: install-time validation and check-time matching."""

import pytest
from addon_fixtures import bundle_sets, read_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from metacore.security.patterns import KNOWN_KINDS, capabilities_problems, capability_problems, matches

NAME_CASES = [
    # kind, pattern, target, expected
    ("event:emit", "ticket.created", "ticket.created", True),
    ("event:emit", "ticket.created", "ticket.resolved", False),
    ("event:emit", "Ticket.Created", "ticket.created", True),
    ("event:emit", "orders.*", "orders.created", True),
    ("event:emit", "orders.*", "orders.line.created", True),
    ("event:emit", "orders.*", "orders", False),
    ("event:emit", "orders.*", "ordersx.created", False),
    ("event:emit", "orders.*", "other.orders.created", False),
    ("event:subscribe", "*.created", "ticket.created", True),
    ("event:subscribe", "*.created", "a.b.created", True),
    ("event:subscribe", "*.created", "created", False),
    ("event:subscribe", "*.created", "ticket.xcreated", False),
    ("event:subscribe", "*", "anything.at.all", True),
    ("db:read", "users", "users", True),
    ("db:read", "users", "users.secret", False),
    ("db:read", "addon_tickets.*", "tickets.comments", True),
    ("db:read", "addon_tickets.*", "addon_tickets.comments", True),
    ("db:read", "tickets.*", "addon_tickets.comments", True),
    ("db:read", "addon_tickets.*", "addon_ticketsx.comments", False),
    ("db:write", "addon_tickets.*", "orders.orders", False),
    ("http:fetch", "*", "https://api.stripe.com/", False),  # never a valid http pattern
]

HTTP_CASES = [
    ("api.stripe.com", "https://api.stripe.com/v1/charges", True),
    ("api.stripe.com", "http://api.stripe.com/", True),
    ("api.stripe.com", "https://API.Stripe.com./v1", True),
    ("api.stripe.com", "https://api.stripe.com:443/v1", True),
    ("api.stripe.com", "https://api.stripe.com:8443/v1", False),
    ("api.stripe.com", "https://evil.com/?api.stripe.com", False),
    ("api.stripe.com", "https://api.stripe.com.evil.com/", False),
    ("api.stripe.com", "https://api.stripe.com@evil.com/", False),
    ("api.stripe.com", "ftp://api.stripe.com/", False),
    ("api.stripe.com", "api.stripe.com", True),
    ("api.x.com:8443", "https://api.x.com:8443/", True),
    ("api.x.com:8443", "https://api.x.com/", False),
    ("*.slack.com", "https://hooks.slack.com/services/x", True),
    ("*.slack.com", "https://a.b.slack.com/", True),
    ("*.slack.com", "https://slack.com/", False),
    ("*.slack.com", "https://evilslack.com/", False),
    ("*.slack.com", "https://slack.com.evil.com/", False),
    ("https://api.slack.com/*", "https://api.slack.com/api/chat.postMessage", True),
    ("https://api.slack.com/*", "https://api.slack.com", True),
    ("https://api.slack.com/*", "http://api.slack.com/api", False),
    ("https://api.slack.com/*", "https://hooks.slack.com/api", False),
    ("https://api.x.com/v1/*", "https://api.x.com/v1/charges", True),
    ("https://api.x.com/v1/*", "https://api.x.com/v1", False),
    ("https://api.x.com/v1/*", "https://api.x.com/v10/charges", False),
    ("https://api.x.com/v1/*", "https://api.x.com/v1/../admin", False),
    ("https://api.x.com/v1/*", "https://api.x.com/v1/a/../b", True),
    ("https://api.x.com/v1/*", "https://api.x.com/v1/%2e%2e/admin", False),
    ("https://api.x.com/v1/*", "https://api.x.com/v1%2f..%2fadmin", False),
    ("https://api.x.com/v1/status", "https://api.x.com/v1/status", True),
    ("https://api.x.com/v1/status", "https://api.x.com/v1/status/x", False),
    ("https://*.x.com/*", "https://a.x.com/z", True),
    ("https://bücher.example/*", "https://xn--bcher-kva.example/", False),  # malformed pattern: never matches
    ("xn--bcher-kva.example", "https://bücher.example/", True),
]


@pytest.mark.parametrize("kind,pattern,target,expected", NAME_CASES)
def test_name_patterns(kind, pattern, target, expected):
    assert matches(kind, pattern, target) is expected


@pytest.mark.parametrize("pattern,target,expected", HTTP_CASES)
def test_http_patterns(pattern, target, expected):
    assert matches("http:fetch", pattern, target) is expected


REFUSED = [
    ("db:admin", "x", "unknown capability kind"),
    ("", "x", "unknown capability kind"),
    ("db:read", "", "empty target"),
    ("db:read", "*", "over-broad"),
    ("event:subscribe", "*", "over-broad"),
    ("http:fetch", "*", "over-broad"),
    ("http:fetch", "*.com", "over-broad"),
    ("http:fetch", "*.co.uk", "over-broad"),
    ("http:fetch", "*.gob.mx", "over-broad"),
    ("http:fetch", "https://*.com/*", "over-broad"),
    ("http:fetch", "api.*.com", "malformed host"),
    ("http:fetch", "a*.slack.com", "malformed host"),
    ("http:fetch", "localhost", "fully qualified"),
    ("http:fetch", "10.0.0.1", "IP literals"),
    ("http:fetch", "https://[::1]/*", "IP literals"),
    ("http:fetch", "https://api.x.com/*?a=1", "no query"),
    ("http:fetch", "https://user@api.x.com/*", "no userinfo"),
    ("http:fetch", "ftp://api.x.com/*", "scheme"),
    ("http:fetch", "https://api.x.com/v*", "path wildcard"),
    ("http:fetch", "https://api.x.com/*/x", "only end"),
    ("http:fetch", "https://api.x.com/a/../*", "plain"),
    ("http:fetch", "api.x.com/path", "malformed host pattern"),
    ("http:fetch", "api.x.com:99999", "bad port"),
    ("db:read", "a.*.b", "first or the last"),
    ("db:read", "*.*", "first or the last"),
    ("db:read", "ord*", "malformed name"),
    ("db:read", "a..b", "malformed name"),
    ("event:emit", "addon_{{ADDON_KEY}}.*", "template placeholder"),
]


@pytest.mark.parametrize("kind,target,fragment", REFUSED)
def test_refused_capabilities_say_why(kind, target, fragment):
    problems = capability_problems(kind, target)
    assert len(problems) == 1 and fragment in problems[0], problems


def _capabilities(bundles):
    return [
        (path.name, cap["kind"], cap["target"].replace("{{ADDON_KEY}}", "demo"))
        for path in bundles
        for cap in read_raw(path).get("capabilities") or ()
    ]


@pytest.mark.parametrize("bundles", bundle_sets())
def test_every_fixture_capability_is_accepted(bundles):
    caps = _capabilities(bundles)
    assert len(caps) > 10
    assert {kind for _, kind, _ in caps} <= set(KNOWN_KINDS)
    refused = [(name, kind, target, capability_problems(kind, target)) for name, kind, target in caps]
    assert [r for r in refused if r[3]] == []
    assert capabilities_problems([{"kind": k, "target": t} for _, k, t in caps]) == []


def test_sdk_fixture_capabilities_match_what_they_mean():
    assert matches("http:fetch", "https://api.slack.com/*", "https://api.slack.com/api/chat.postMessage")
    assert matches("http:fetch", "*.sat.gob.mx", "https://pac.sat.gob.mx/cfdi")
    assert not matches("http:fetch", "*.sat.gob.mx", "https://sat.gob.mx.evil.io/")
    assert matches("db:write", "addon_tickets.*", "tickets.comments")
    assert matches("event:emit", "ticket.created", "ticket.created")


# --- properties -------------------------------------------------------------------------

segment = st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True)
names = st.lists(segment, min_size=1, max_size=5).map(".".join)
labels = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
hosts = st.lists(labels, min_size=2, max_size=5).map(".".join)


@settings(max_examples=100, deadline=None)
@given(names)
def test_a_name_matches_itself_and_star(name):
    assert matches("event:emit", name, name)
    assert matches("event:emit", "*", name)


@settings(max_examples=100, deadline=None)
@given(names, names)
def test_prefix_pattern_matches_exactly_the_names_below(prefix, name):
    expected = name.startswith(prefix + ".")
    assert matches("event:emit", f"{prefix}.*", name) is expected
    assert matches("event:emit", f"{prefix}.*", prefix) is False


@settings(max_examples=100, deadline=None)
@given(names, names)
def test_suffix_pattern_matches_exactly_the_names_ending_in_it(suffix, name):
    expected = name.endswith("." + suffix)
    assert matches("event:subscribe", f"*.{suffix}", name) is expected


@settings(max_examples=100, deadline=None)
@given(hosts, hosts, st.sampled_from(["http", "https"]), names)
def test_host_wildcard_never_crosses_a_label_boundary(domain, host, scheme, path):
    url = f"{scheme}://{host}/{path.replace('.', '/')}"
    assert matches("http:fetch", f"*.{domain}", url) is host.endswith("." + domain)
    assert matches("http:fetch", domain, url) is (host == domain)


@settings(max_examples=100, deadline=None)
@given(hosts, st.lists(segment, min_size=1, max_size=3), st.lists(segment, max_size=3))
def test_url_path_prefix_is_segment_aligned(host, base, rest):
    pattern = f"https://{host}/{'/'.join(base)}/*"
    inside = f"https://{host}/{'/'.join(base + rest)}/x"
    escape = f"https://{host}/{'/'.join(base)}/../admin"
    assert matches("http:fetch", pattern, inside)
    assert not matches("http:fetch", pattern, escape)
    assert not matches("http:fetch", pattern, f"http://{host}/{'/'.join(base)}/x")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KNOWN_KINDS), st.text(max_size=30), st.text(max_size=60))
def test_matcher_and_validator_never_raise(kind, pattern, target):
    assert isinstance(matches(kind, pattern, target), bool)
    assert isinstance(capability_problems(kind, pattern), list)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(KNOWN_KINDS), st.text(max_size=40))
def test_accepted_patterns_do_not_match_everything(kind, pattern):
    """Whatever passes validation, some target stays out of reach."""
    if capability_problems(kind, pattern):
        return
    outsider = "https://unrelated-zz9.example.org/x" if kind == "http:fetch" else "zz9_unrelated.outsider_q"
    if matches(kind, pattern, outsider):
        other = "https://other-zz8.example.net/y" if kind == "http:fetch" else "zz8_other.elsewhere_w"
        assert not matches(kind, pattern, other)
