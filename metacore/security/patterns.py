"""The capability pattern language: validation at install, matching at check time.

A capability is `(kind, target-pattern)`. Kinds are `KNOWN_KINDS`. Two pattern families:

Names (`db:read`, `db:write`, `event:emit`, `event:subscribe`, `event:notify`)
    A name is dot-separated segments of `[A-Za-z0-9_-]`, compared case-insensitively.
    - `orders.created`  exact name.
    - `*`               any name (valid syntax, but refused at install as over-broad).
    - `orders.*`        any name strictly below `orders` (`orders.x`, `orders.x.y`; not `orders`).
    - `*.created`       any name ending in `.created` with at least one segment before it.
    `*` stands for one or more whole segments; it is allowed only alone, as the last
    segment or as the first segment, never both and never inside a segment.
    db targets name tables: a bare `users` is a host table, `<addon>.<table>` an addon's
    table; `addon_<addon>.<table>` (the PostgreSQL schema form manifests use) is the same
    name as `<addon>.<table>`. A `db:write` grant also satisfies a `db:read` check.

Hosts and URLs (`http:fetch`)
    - `api.stripe.com`       exactly that host, scheme http or https, the scheme's default
                             port, any path.
    - `*.slack.com`          any host with at least one label before `.slack.com`
                             (`a.slack.com`, `a.b.slack.com`; not `slack.com` itself).
    - `api.x.com:8443`       an explicit port must equal the URL's port.
    - `https://api.slack.com/*`  URL form: the scheme must be equal, the host as above,
                             and the path `/*` means any path; `/v1/*` any path below `/v1/`;
                             a path without `*` must be equal. No query, fragment or userinfo.
    Host names are compared lower-cased, without a trailing dot, IDNA-encoded. A target
    URL's path is matched after removing `.`/`..` segments; a path-restricted pattern never
    matches a target whose path hides separators or dots (`%2f`, `%2e`, `%5c`, `\\`).
    Refused at install: `*`, a wildcard that is not the whole leftmost label, a suffix that
    is a top-level domain or a known public suffix (`*.com`, `*.co.uk`), IP literals
    (the SSRF guard refuses private addresses anyway; name a host), unparseable hosts.
"""

import posixpath
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from metacore.errors import InvalidInput
from metacore.schema.naming import addon_of_schema

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest

DB_READ, DB_WRITE = "db:read", "db:write"
HTTP_FETCH = "http:fetch"
EVENT_EMIT, EVENT_SUBSCRIBE = "event:emit", "event:subscribe"
EVENT_NOTIFY = "event:notify"  # emit an event straight to named users of the call's organization
KNOWN_KINDS = (DB_READ, DB_WRITE, HTTP_FETCH, EVENT_EMIT, EVENT_SUBSCRIBE, EVENT_NOTIFY)
NAME_KINDS = frozenset({DB_READ, DB_WRITE, EVENT_EMIT, EVENT_SUBSCRIBE, EVENT_NOTIFY})

# Grant kinds that satisfy a check of a given kind.
SATISFIED_BY: dict[str, tuple[str, ...]] = {kind: (kind,) for kind in KNOWN_KINDS}
SATISFIED_BY[DB_READ] = (DB_READ, DB_WRITE)

_SEGMENT = re.compile(r"[a-z0-9_-]+")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Second-level public suffixes under which a wildcard would cover unrelated owners. Not the
# full Public Suffix List: a conservative list of the common ones.
PUBLIC_SUFFIXES = frozenset(
    f"{sld}.{cc}"
    for cc in ("uk", "mx", "br", "ar", "au", "jp", "nz", "za", "in", "cn", "tr", "co", "pe", "es", "kr", "il")
    for sld in ("co", "com", "org", "net", "gov", "gob", "edu", "ac", "ne", "or", "go")
) | frozenset(
    {"github.io", "herokuapp.com", "appspot.com", "cloudfront.net", "amazonaws.com", "azurewebsites.net"}
)
_UNSAFE_PATH = re.compile(r"%2e|%2f|%5c|\\", re.IGNORECASE)

#: `(scheme|None, host, port|None, path_prefix|None, path_exact|None)` of a grant pattern.
HttpPattern = tuple[str | None, str, int | None, str | None, str | None]
#: `(scheme, host, port, path)` of a fetch target.
HttpTarget = tuple[str, str, int, str]


# --- validation (install time) -------------------------------------------------------


def capability_problems(kind: str, target: str) -> list[str]:
    """Why `(kind, target)` cannot be granted; empty when it is acceptable."""
    if kind not in KNOWN_KINDS:
        return [f"unknown capability kind {kind!r} (known: {', '.join(KNOWN_KINDS)})"]
    if not isinstance(target, str) or not target.strip():
        return [f"{kind}: empty target"]
    if "{{" in target or "}}" in target:
        return [f"{kind} {target!r}: unsubstituted template placeholder"]
    if target.strip() == "*":
        return [f"{kind} '*': over-broad pattern (name what the addon needs)"]
    if kind == HTTP_FETCH:
        return _http_problems(target)
    return _name_problems(kind, target)


def _name_problems(kind: str, target: str) -> list[str]:
    segments = target.lower().split(".")
    stars = [i for i, s in enumerate(segments) if s == "*"]
    if len(segments) > 1 and stars not in ([], [0], [len(segments) - 1]):
        return [f"{kind} {target!r}: '*' may only be the first or the last segment"]
    for segment in segments:
        if segment != "*" and not _SEGMENT.fullmatch(segment):
            return [
                f"{kind} {target!r}: malformed name (segments of letters, digits, '_' or '-', joined by '.')"
            ]
    return []


def _http_problems(target: str) -> list[str]:
    try:
        pattern = _parse_http_pattern(target)
    except ValueError as exc:
        return [f"http:fetch {target!r}: {exc}"]
    host = pattern[1]
    if host.startswith("*."):
        suffix = host[2:]
        if "." not in suffix or suffix in PUBLIC_SUFFIXES:
            return [
                f"http:fetch {target!r}: over-broad pattern (a wildcard must sit above a registrable domain)"
            ]
    return []


@lru_cache(maxsize=4096)
def _parse_http_pattern(pattern: str) -> HttpPattern:
    """`(scheme|None, host, port|None, path_prefix|None, path_exact|None)`; ValueError if malformed."""
    text = pattern.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError("scheme must be http or https")
        if parts.query or parts.fragment or "?" in text or "#" in text:
            raise ValueError("a pattern has no query or fragment")
        if "@" in parts.netloc:
            raise ValueError("a pattern has no userinfo")
        scheme, netloc, path = parts.scheme, parts.netloc, parts.path or "/*"
    else:
        if any(c in text for c in "/?#@"):
            raise ValueError("malformed host pattern (use host, *.domain or https://host/path/*)")
        scheme, netloc, path = None, text, None
    host, port = _split_port(netloc)
    host = _check_host_pattern(host)
    prefix: str | None = None
    exact: str | None = None
    if path is not None:
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        if "*" in path[:-1]:
            raise ValueError("'*' may only end the path, as '/*'")
        if path.endswith("*"):
            if not path.endswith("/*"):
                raise ValueError("a path wildcard must follow '/', as in '/v1/*'")
            prefix = path[:-1]
        else:
            exact = path
        if _UNSAFE_PATH.search(path) or "/../" in path + "/" or "/./" in path + "/":
            raise ValueError("path must be plain (no dot segments or encoded separators)")
    return scheme, host, port, prefix, exact


def _split_port(netloc: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        raise ValueError("IP literals are not allowed: name a host")
    host, sep, port = netloc.rpartition(":")
    if not sep:
        return netloc, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r}")
    return host, int(port)


def _check_host_pattern(host: str) -> str:
    host = host.lower().rstrip(".")
    if not host:
        raise ValueError("missing host")
    wildcard = host.startswith("*.")
    labels = (host[2:] if wildcard else host).split(".")
    if any(not _LABEL.fullmatch(label) for label in labels):
        raise ValueError("malformed host (wildcard only as the whole leftmost label, as in *.example.com)")
    if labels[-1].isdigit():
        raise ValueError("IP literals are not allowed: name a host")
    if len(labels) < 2 and not wildcard:
        raise ValueError("host must be a fully qualified domain name")
    return host


# --- matching (check time) ------------------------------------------------------------


def normalize_name(kind: str, name: str) -> str:
    """Lower-case; for db kinds `addon_<key>.<table>` becomes `<key>.<table>`."""
    name = name.strip().lower()
    if kind in (DB_READ, DB_WRITE) and "." in name:
        name = addon_of_schema(name)
    return name


def match_name(pattern: str, name: str) -> bool:
    """Name-pattern match on already normalised strings."""
    if pattern == "*":
        return True
    if pattern == name:
        return True
    if pattern.endswith(".*"):
        return name.startswith(pattern[:-1]) and len(name) > len(pattern) - 1
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return False


def parse_http_target(target: str) -> HttpTarget | None:
    """`(scheme, host, port, path)` of a target URL (or bare `host[:port]`, read as https);
    None when it cannot be a fetch target."""
    text = target.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not host:
        return None
    host = host.rstrip(".")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], parts.path or "/"


def match_host(pattern_host: str, host: str) -> bool:
    if pattern_host.startswith("*."):
        return host.endswith(pattern_host[1:]) and len(host) > len(pattern_host) - 1
    return pattern_host == host


def parse_http_pattern(pattern: str) -> HttpPattern | None:
    """The parsed form `match_http_parsed` takes; None when the pattern is malformed."""
    try:
        return _parse_http_pattern(pattern)
    except ValueError:
        return None


def match_http_parsed(pattern: HttpPattern, target: HttpTarget) -> bool:
    """`pattern` from `parse_http_pattern`, `target` from `parse_http_target` (both not None)."""
    p_scheme, p_host, p_port, p_prefix, p_exact = pattern
    scheme, host, port, path = target
    if p_scheme is not None and p_scheme != scheme:
        return False
    if port != (p_port if p_port is not None else DEFAULT_PORTS[scheme]):
        return False
    if not match_host(p_host, host):
        return False
    if p_prefix is None and p_exact is None:
        return True
    if _UNSAFE_PATH.search(path):
        return False
    path = _remove_dot_segments(path)
    if p_exact is not None:
        return path == p_exact
    return path.startswith(p_prefix)  # type: ignore[arg-type]  # set: exact and both-None returned above


def match_http(pattern: str, target: str) -> bool:
    parsed_pattern, parsed_target = parse_http_pattern(pattern), parse_http_target(target)
    if parsed_pattern is None or parsed_target is None:
        return False
    return match_http_parsed(parsed_pattern, parsed_target)


def _remove_dot_segments(path: str) -> str:
    normalised = posixpath.normpath(path)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if path.endswith("/") and not normalised.endswith("/"):
        normalised += "/"
    return normalised


def matches(kind: str, pattern: str, target: str) -> bool:
    """Whether a grant `(kind, pattern)` covers a request of the same `kind` on `target`.
    Kind implication (`db:write` covers `db:read`) is `SATISFIED_BY`'s business."""
    if kind == HTTP_FETCH:
        return match_http(pattern, target)
    if kind in NAME_KINDS:
        return match_name(normalize_name(kind, pattern), normalize_name(kind, target))
    return False


def capabilities_problems(capabilities: Iterable[object]) -> list[str]:
    """Problems of a whole capability list (dicts or objects with `kind`/`target`), for the
    installer: an addon declaring any of them is refused."""
    problems: list[str] = []
    for cap in capabilities:
        kind = cap.get("kind") if isinstance(cap, dict) else getattr(cap, "kind", None)
        target = cap.get("target") if isinstance(cap, dict) else getattr(cap, "target", None)
        problems.extend(capability_problems(kind or "", target or ""))
    return problems


def require_grantable(manifest: "Manifest") -> None:
    """Refuse (InvalidInput) an addon declaring a capability no grant could mean: the one
    place install, preflight and upgrade decide it."""
    problems: dict[str, list[str]] = {}
    for i, capability in enumerate(manifest.capabilities):
        found = capability_problems(capability.kind, capability.target)
        if found:
            problems[f"capabilities[{i}]"] = found
    if problems:
        first = next(iter(problems.values()))[0]
        raise InvalidInput(f"addon {manifest.key}: capability not grantable: {first}", errors=problems)
