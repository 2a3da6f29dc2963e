"""The package's shape, checked from its source so it stays that way.

- No import cycles among metacore's modules. Every import counts, at module level or inside a
  function (a lazy import is still a dependency); only `if TYPE_CHECKING:` blocks are left out,
  since they never run.
- `get_kernel()` is called only at the edges (API views, admin, management commands, the
  WebSocket consumer, task entry points, signal hookup in `apps.py`): every other module gets its
  collaborators in its constructor or its arguments.
- Below the edges nothing even names the kernel: no `kernel` parameter or attribute, no import
  of `metacore.kernel` (not even for typing), so a service's constructor shows all it uses.
"""

import ast
import itertools
import re
from pathlib import Path

import metacore

PACKAGE = Path(metacore.__file__).parent
EDGES = (
    "metacore.api.",
    "metacore.management.",
    "metacore.admin",
    "metacore.admin_data.",
    "metacore.integrations.admin",
    "metacore.integrations.tasks",
    "metacore.hub.consumer",
    "metacore.apps",
    "metacore.kernel",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")[: None if is_package else -1]
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [
            f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
            for alias in node.names
        ]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _graph():
    modules = _modules()
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    graph = {}
    for name, tree in trees.items():
        is_package = modules[name].name == "__init__.py"
        graph[name] = set()
        for node in _runtime_nodes(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= _imported(name, is_package, node, modules)
    return graph, trees


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_get_kernel_only_at_the_edges():
    _, trees = _graph()
    callers = set()
    for name, tree in trees.items():
        if name.startswith(EDGES) or name in {edge.rstrip(".") for edge in EDGES}:
            continue
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called == "get_kernel":
                    callers.add(name)
    assert callers == set()


def _names_the_kernel(tree: ast.AST) -> set[str]:
    """How `tree` names the kernel: `self.kernel`, `<x>.kernel.<y>`, `kernel` parameters, imports
    of `metacore.kernel`/`metacore.runtime` (every node, `if TYPE_CHECKING:` included). A
    manifest's `kernel` field (the version range it needs) is a plain value, never reached through."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            (node.attr == "kernel" and isinstance(node.value, ast.Name) and node.value.id == "self")
            or (isinstance(node.value, ast.Attribute) and node.value.attr == "kernel")
        ):
            found.add(f"line {node.lineno}: .kernel")
        elif isinstance(node, ast.arg) and node.arg == "kernel":
            found.add(f"line {node.lineno}: parameter kernel")
        elif isinstance(node, ast.ImportFrom) and node.module in ("metacore.kernel", "metacore.runtime"):
            found.add(f"line {node.lineno}: import from {node.module}")
        elif isinstance(node, ast.Import) and any(
            alias.name in ("metacore.kernel", "metacore.runtime") for alias in node.names
        ):
            found.add(f"line {node.lineno}: import")
    return found


def test_nothing_below_the_edges_names_the_kernel():
    _, trees = _graph()
    named = {
        name: sorted(found)
        for name, tree in trees.items()
        if not name.startswith(EDGES)
        and name not in {edge.rstrip(".") for edge in EDGES} | {"metacore.runtime"}
        and (found := _names_the_kernel(tree))
    }
    assert named == {}


def test_the_kernel_finder_finds_each_spelling():
    source = (
        "from metacore.kernel import Kernel\n"
        "import metacore.runtime\n"
        "class S:\n"
        "    def __init__(self, kernel):\n"
        "        self.kernel = kernel\n"
        "        other.kernel.store\n"
        "        manifest.kernel\n"
    )
    assert len(_names_the_kernel(ast.parse(source))) == 5


def _builds_schema_prefix(node: ast.AST) -> bool:
    """`"addon_"`, or an f-string putting a value right after `addon_` (`f"addon_{key}"`)."""
    if isinstance(node, ast.Constant):
        return node.value == "addon_"
    if isinstance(node, ast.JoinedStr):
        parts = node.values
        return any(
            isinstance(a, ast.Constant)
            and isinstance(a.value, str)
            and re.search(r"(^|\W)addon_$", a.value)
            and isinstance(b, ast.FormattedValue)
            for a, b in itertools.pairwise(parts)
        )
    return False


def test_the_schema_prefix_is_spelled_only_in_schema_naming():
    _, trees = _graph()
    spelled = {
        name
        for name, tree in trees.items()
        if name != "metacore.schema.naming" and any(_builds_schema_prefix(node) for node in ast.walk(tree))
    }
    assert spelled == set()


def test_the_upgrader_uses_only_the_installers_public_api():
    _, trees = _graph()

    def names_the_installer(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "installer") or (
            isinstance(node, ast.Attribute) and node.attr == "installer"
        )

    private = {
        node.attr
        for node in ast.walk(trees["metacore.installer.upgrade"])
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and names_the_installer(node.value)
    }
    assert private == set()


# Modules that still query installation rows themselves instead of the registry's read model
# (`ModelRegistry.installed()`, `InstalledAddon`): each leaves this set when it moves over.
READS_INSTALLATIONS_DIRECTLY = {"metacore.integrations.outbound"}


def test_installed_addon_state_is_read_through_the_registry():
    """Outside the installer (which writes the rows) and the registry (which serves them),
    no module queries `Installation` or `OrganizationInstallation`; the permission package's
    use of the content type is not a query of addon state."""
    _, trees = _graph()
    readers = {
        name
        for name, tree in trees.items()
        if not name.startswith("metacore.installer")
        and name not in ("metacore.schema.registry", "metacore.models")
        and any(
            isinstance(node, ast.Attribute)
            and node.attr in ("objects", "_default_manager", "_meta")
            and isinstance(node.value, ast.Name)
            and node.value.id in ("Installation", "OrganizationInstallation")
            for node in _runtime_nodes(tree)
        )
    }
    assert readers == READS_INSTALLATIONS_DIRECTLY
