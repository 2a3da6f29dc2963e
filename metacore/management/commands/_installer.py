"""Shared bits of the installer commands (not a command: the name starts with `_`)."""


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
