"""Shared bits of the installer commands (not a command: the name starts with `_`)."""
from contextlib import contextmanager

from django.core.management.base import CommandError

from metacore.errors import MetacoreError


@contextmanager
def as_command_errors(command):
    """Turn a service error into a one-line CommandError (every manifest problem on stderr)."""
    try:
        yield
    except MetacoreError as exc:
        for line in getattr(exc, "problems", [])[1:]:
            command.stderr.write(f"  {line}")
        raise CommandError(exc.message) from None


def describe_install(result) -> str:
    parts = [f"installed {result.key} {result.version}"]
    if result.created_tables:
        parts.append(f"tables created: {', '.join(result.created_tables)}")
    if result.adopted_tables:
        parts.append(f"tables kept from before: {', '.join(result.adopted_tables)}")
    for migration in result.migrations:
        parts.append(f"migration {migration.name}: {migration.status}" + (f" ({migration.reason})" if migration.reason else ""))
    parts += [f"warning: {w}" for w in result.warnings]
    return "\n  ".join(parts)
