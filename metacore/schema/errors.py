"""Schema errors: addon SQL that cannot be confined on this database (codes: docs/api.md)."""

from metacore.errors import MetacoreError


class ConfinementUnavailable(MetacoreError):
    """The database user may not create roles, so addon SQL cannot be confined: refused."""

    status = 503
    code = "confinement_unavailable"
