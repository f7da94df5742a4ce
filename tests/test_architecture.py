"""The layout's rules, read from every module's imports, so the shape cannot drift back.

The parts (docs/architecture.md): core/ (records, files, plan, the migrate loop), drivers/ (one per
dialect behind drivers/base.py's Driver protocol), the features schema/, copy/, ops/, the cli/, and
at the top entry.py + fast_pg.py (the console script and its no-op fast paths).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

RUNNER = REPO / "runner"

# What each part may import (besides itself). Features sit on core + drivers; ops' `new` also
# refreshes schema snapshots, so ops may use schema (never the other way round).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "drivers": {"core"},
    "schema": {"core", "drivers"},
    "copy": {"core", "drivers"},
    "ops": {"core", "drivers", "schema"},
    "cli": {"core", "drivers", "schema", "copy", "ops"},
    # the console script: the SQLite fast path reads the journal through the driver; the CLI lazily
    "entry": {"core", "drivers", "fast_pg", "cli"},
    "fast_pg": {"core"},
    "__main__": {"entry"},
    "__init__": set(),
}
# The core may use the driver factory and the protocol, never a concrete driver module.
CORE_MAY_USE = {"agor_db.drivers", "agor_db.drivers.base"}
# No exceptions: adoption (a schema feature) reaches the core as an Adopter the CLI passes in.
EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNNER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["agor_db", *parts])


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never executed)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.body:
                for sub in ast.walk(inner):
                    lines.add(getattr(sub, "lineno", -1))
    return lines


def _imports(path: Path, modules: set[str]) -> list[tuple[str, bool, bool]]:
    """(imported agor_db module, at module level?, type-checking only?) for each import of ``path``."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_only(tree)
    top_level = {id(n) for n in tree.body} | {
        id(n) for block in tree.body if isinstance(block, ast.If) for n in block.body
    }
    found: list[tuple[str, bool, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from pkg import submodule` imports the submodule
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target == "agor_db" or target.startswith("agor_db."):
                found.append((target, id(node) in top_level, node.lineno in typing_only))
    return found


def _graph() -> dict[str, list[tuple[str, bool, bool]]]:
    files = sorted(RUNNER.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_known_part():
    unknown = sorted(m for m in _graph() if _part(m) not in ALLOWED)
    assert not unknown, f"modules outside the documented parts: {unknown}"


def test_parts_import_only_downward():
    wrong = []
    for module, imports in _graph().items():
        mine = _part(module)
        for target, _, _ in imports:
            theirs = _part(target)
            if theirs == mine or (module, target) in EXCEPTIONS:
                continue
            if theirs == "__init__" and target == "agor_db":
                continue  # the version string
            if mine == "core" and theirs == "drivers":
                if target not in CORE_MAY_USE:
                    wrong.append(f"{module} -> {target} (a concrete driver)")
            elif theirs not in ALLOWED[mine]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_the_console_script_imports_the_cli_only_lazily():
    """The no-op start must not pay for typer: entry.py imports the CLI inside main() only."""
    eager = [t for t, top, _ in _graph()["agor_db.entry"] if top and _part(t) == "cli"]
    assert not eager, eager


def test_no_import_cycles():
    """Between modules, counting every import that runs (lazy ones too, not TYPE_CHECKING ones)."""
    graph = {m: sorted({t for t, _, typing in imps if not typing and t != m}) for m, imps in _graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_rules_see_the_imports():
    """The reader is not blind: known edges are found (a broken parser would pass every rule)."""
    graph = _graph()
    assert ("agor_db.core.models", True, False) in [(t, top, ty) for t, top, ty in graph["agor_db.core.source"]]
    assert any(t == "agor_db.cli.main" and not top for t, top, _ in graph["agor_db.entry"])
    assert any(t == "agor_db.core.migrate" for t, _, _ in graph["agor_db.copy.run"])


def test_no_function_is_longer_than_a_screen():
    """Functions short enough to read at once: at most 60 lines from the first line of the body (a typer
    command's option declarations are its signature, not its body)."""
    long_ = []
    for path in sorted(RUNNER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                if body > 60:
                    long_.append(f"{path.relative_to(RUNNER)}:{node.lineno} {node.name} ({body} lines)")
    assert not long_, "split these into named steps:\n" + "\n".join(long_)
