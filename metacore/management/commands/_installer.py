"""Shared bits of the installer commands (not a command: the name starts with `_`)."""


def installation_data(installation) -> dict:
    return {"key": installation.key, "version": installation.version, "state": installation.state}


def state_report(installation, organization) -> tuple[str, dict]:
    """(text, data) after enable/disable, for everyone or for one organization."""
    from metacore.kernel import get_kernel

    state, where = installation.state, ""
    if organization:
        state = "enabled" if get_kernel().registry.enabled_for(installation.key, organization) else "disabled"
        where = f" for organization {organization}"
    text = f"{installation.key} {installation.version} is {state}{where}"
    return text, {**installation_data(installation), "state": state, "organization": organization}


def install_data(result) -> dict:
    return {
        **installation_data(result.installation),
        "created_tables": result.created_tables,
        "adopted_tables": result.adopted_tables,
        "warnings": result.warnings,
        "migrations": [{"name": m.name, "status": m.status, "reason": m.reason} for m in result.migrations],
    }


def describe_install(result) -> str:
    parts = [f"installed {result.key} {result.version}"]
    if result.created_tables:
        parts.append(f"tables created: {', '.join(result.created_tables)}")
    if result.adopted_tables:
        parts.append(f"tables kept from before: {', '.join(result.adopted_tables)}")
    for migration in result.migrations:
        parts.append(
            f"migration {migration.name}: {migration.status}"
            + (f" ({migration.reason})" if migration.reason else "")
        )
    parts += [f"warning: {w}" for w in result.warnings]
    return "\n  ".join(parts)
