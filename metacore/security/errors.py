"""Outbound requests' errors (security/ssrf.py): a destination that is not permitted, a remote
side that failed, a fetch that outlived its budget. Codes in docs/api.md, Errors."""

from metacore.errors import Forbidden, MetacoreError


class EgressBlocked(Forbidden):
    """The URL or an address it resolves to is not a permitted destination."""

    code = "egress_blocked"


class FetchError(MetacoreError):
    """The remote side failed: DNS, connection, timeout, too large, too many redirects."""

    status = 502
    code = "fetch_failed"


class FetchTimeout(FetchError):
    """The fetch outlived its budget (connect, send and every read together)."""

    status = 504
    code = "fetch_timeout"
