"""The package arrows of DESIGN section 7 hold (import-linter), and no module of the
project takes part in an import cycle, imports inside functions counted."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("accounts", "taxonomy", "annotation", "jury", "config")


def test_import_contracts_are_kept():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contracts)} kept, 0 broken" in result.stdout


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules `name` imports, at the top or inside functions."""
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_takes_part_in_an_import_cycle():
    modules = project_modules()
    graph = {name: imported(name, path, modules) for name, path in modules.items()}

    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert cycles(graph) == [["a", "b", "c"]]


# mypy's --strict, as its per-module flags (mypy --help lists what --strict enables).
STRICT_FLAGS = {
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "disallow_untyped_decorators",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
}


def strict_patterns() -> list[str]:
    """The module patterns of the mypy section that sets every strict flag."""
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    patterns: list[str] = []
    for section in mypy.get("overrides", []):
        if all(section.get(flag) is True for flag in STRICT_FLAGS):
            module = section["module"]
            patterns += [module] if isinstance(module, str) else module
    return patterns


def matches(pattern: str, module: str) -> bool:
    """mypy's module patterns: `a.*` is a and below, a `*` part is any parts."""
    import fnmatch

    if pattern.endswith(".*") and module == pattern[:-2]:
        return True
    return fnmatch.fnmatchcase(module, pattern)


def test_the_rules_and_every_service_are_type_checked_strictly():
    patterns = strict_patterns()
    assert patterns, "no mypy section sets every strict flag"
    domain = [
        name
        for name in project_modules()
        if ".rules" in name or name.rsplit(".", 1)[-1] == "services"
    ]
    assert "annotation.rules.derivation" in domain
    assert "jury.runs.services" in domain
    loose = [m for m in domain if not any(matches(p, m) for p in patterns)]
    assert loose == []


def test_the_strict_pattern_matcher_tells_modules_apart():
    assert matches("*.services", "annotation.export.services")
    assert matches("annotation.rules.*", "annotation.rules")
    assert not matches("annotation.rules.*", "annotation.rulesx")
    assert not matches("*.services", "annotation.export.views")
