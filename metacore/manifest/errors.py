"""Manifest validation errors: every problem, each naming its JSON path and the rule."""

from __future__ import annotations

from metacore.errors import InvalidInput


class ManifestError(InvalidInput):
    """A manifest that cannot be used. `problems` lists `"<path>: <rule>"` lines, all of them;
    `errors` groups the rules by path for the API envelope."""

    code = "invalid_manifest"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        grouped: dict[str, list[str]] = {}
        for line in self.problems:
            path, sep, rule = line.partition(": ")
            grouped.setdefault(path if sep else "manifest", []).append(rule if sep else line)
        count = len(self.problems)
        summary = self.problems[0] if count == 1 else f"{count} problems, first: {self.problems[0]}"
        super().__init__(f"invalid manifest: {summary}", errors=grouped)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class Problems:
    """Collects problems while a manifest is read, so all of them are reported at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def add(self, path: str, rule: str) -> None:
        self.lines.append(f"{path or 'manifest'}: {rule}")

    def warn(self, path: str, rule: str) -> None:
        """Something upstream accepts and metacore accepts too, but the author should fix."""
        self.warnings.append(f"{path or 'manifest'}: {rule}")

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ManifestError(self.lines)


def at(path: str, key: str | int) -> str:
    """`at("models", 0)` -> `models[0]`; `at("models[0]", "columns")` -> `models[0].columns`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
