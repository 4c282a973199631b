"""The layers, read from the real import graph of every module in empirical/, toymodel/, figures/ and
benchmarks/ (module-level, function-level and type-checking imports alike; relative imports resolved).

Classes are derived from the code, not listed by hand: an entry point is a module with an
`if __name__ == "__main__":` block, or any benchmark; the harness is empirical.harness.*; the paper is
empirical.paper.*; figure helpers are the figures/ modules without a main block; the library is every
other module of empirical/ and toymodel/. `python tests/test_layers.py [ROOT]` prints the graph's
violations for another checkout (an older commit in a git worktree, say).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("empirical", "toymodel", "figures", "benchmarks")


@dataclass
class Module:
    """One project module: its dotted name, file, parsed tree and the project modules it imports."""
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    imports: set[str] = field(default_factory=set)


def _has_main_block(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [node.test.left, *node.test.comparators]
            if any(isinstance(n, ast.Name) and n.id == "__name__" for n in names) and any(
                    isinstance(n, ast.Constant) and n.value == "__main__" for n in names):
                return True
    return False


def _known(name: str, modules: dict[str, Module]) -> str | None:
    """The longest dotted prefix of `name` that is a project module (None for third-party names)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _from_base(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if node.level - 1 > len(package):
        raise ValueError(f"{module.path}: relative import beyond the top package")
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: Module, node: ast.AST, modules: dict[str, Module]) -> set[str]:
    """Project modules an import statement depends on. `import a.b` names a.b; `from p import x` reads p's
    namespace (its __init__ runs and its attributes come first) and, when p.x is a module, loads p.x."""
    if isinstance(node, ast.Import):
        found = {_known(alias.name, modules) for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        base = _from_base(module, node)
        found = {_known(base, modules)} | {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    else:
        return set()
    return {name for name in found if name is not None and name != module.name}


def import_graph(root: Path = ROOT) -> dict[str, Module]:
    """Every module under root's project folders with its project imports resolved."""
    modules: dict[str, Module] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)), is_package)
    for module in modules.values():
        for node in ast.walk(module.tree):
            module.imports |= _targets(module, node, modules)
    return modules


def _layer(module: Module) -> str:
    if module.name.startswith("benchmarks") and not module.is_package or _has_main_block(module.tree):
        return "entry"
    if module.name.startswith("empirical.harness"):
        return "harness"
    if module.name.startswith("empirical.paper"):
        return "paper"
    if module.name.startswith("figures"):
        return "figure-helper"
    if module.name.startswith(("empirical", "toymodel")):
        return "library"
    return "other"


def layers(modules: dict[str, Module]) -> dict[str, str]:
    """entry | harness | paper | figure-helper | cli-helper | library | other, from names and code.

    A cli-helper is a module of empirical/ or toymodel/ that imports argparse and is imported by entry
    points only (argparse types shared by command lines): part of the entry layer, which the library may
    not import; like the library it never prints."""
    found = {name: _layer(m) for name, m in modules.items()}
    importers: dict[str, set[str]] = {name: set() for name in modules}
    for name, module in modules.items():
        for other in module.imports:
            importers[other].add(name)
    for name, module in modules.items():
        if (found[name] == "library" and _argparse(module) and importers[name]
                and all(found[user] == "entry" for user in importers[name])):
            found[name] = "cli-helper"
    return found


def cycles(modules: dict[str, Module]) -> tuple[list[list[str]], list[list[str]]]:
    """The strongly connected components of more than one module (Tarjan) and a shortest cycle
    (a -> b -> ... -> a) through each."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in sorted(modules[name].imports):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == name:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(modules) + 100))
    for name in sorted(modules):
        if name not in index:
            visit(name)
    return [_one_cycle(component, modules) for component in components], components


def _one_cycle(component: list[str], modules: dict[str, Module]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside the component)."""
    start, inside = component[0], set(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for name in frontier:
            for other in sorted(modules[name].imports & inside):
                if other == start:
                    path = [name]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if other not in parent:
                    parent[other] = name
                    following.append(other)
        frontier = following
    raise AssertionError(f"no cycle found in component {component}")


def _calls(tree: ast.AST) -> list[str]:
    """print(...) and <x>.error(...) calls where x is called parser (argparse's exit-with-usage)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                found.append(f"print at line {node.lineno}")
            elif (isinstance(func, ast.Attribute) and func.attr == "error" and isinstance(func.value, ast.Name)
                  and "parser" in func.value.id):
                found.append(f"{func.value.id}.error at line {node.lineno}")
    return found


def _argparse(module: Module) -> bool:
    return any(isinstance(node, ast.Import) and any(a.name.split(".")[0] == "argparse" for a in node.names)
               or isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "argparse"
               for node in ast.walk(module.tree))


def _mutates_a_namespace(module: Module) -> list[int]:
    """Lines that call setattr(args, ...) on an argparse result."""
    return [node.lineno for node in ast.walk(module.tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
            and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "args"]


def _assigns_to_a_namespace(module: Module) -> list[str]:
    """`args.name = ...` statements (plain, augmented or tuple targets): `args.<attr> at line <n>`."""
    found = []
    for node in ast.walk(module.tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            for leaf in (target.elts if isinstance(target, ast.Tuple) else [target]):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "args":
                    found.append(f"args.{leaf.attr} at line {node.lineno}")
    return found


def violations(modules: dict[str, Module]) -> dict[str, list[str]]:
    """Every broken layering rule, by rule, each as readable lines."""
    layer = layers(modules)
    edges = [(name, other) for name, m in modules.items() for other in sorted(m.imports)]
    forbidden = {"library": {"harness", "paper", "cli-helper"}, "harness": {"paper"}, "cli-helper": {"paper"}}
    found: dict[str, list[str]] = {
        "imports an entry point": [f"{a} -> {b}" for a, b in edges if layer[b] == "entry"],
        "crosses a layer": [f"{a} ({layer[a]}) -> {b} ({layer[b]})" for a, b in edges
                            if layer[b] in forbidden.get(layer[a], ())],
        "import cycle": [" -> ".join(cycle) + (f" (a circle of {len(group)}: {', '.join(group)})"
                                               if len(group) > len(cycle) - 1 else "")
                         for cycle, group in zip(*cycles(modules))],
        "library parses arguments": [name for name, m in modules.items() if layer[name] == "library" and _argparse(m)],
        "library prints or exits": [f"{name}: {call}" for name, m in modules.items()
                                    if layer[name] in ("library", "cli-helper") for call in _calls(m.tree)],
        "mutates an argparse Namespace": [f"{name}: line {line}" for name, m in modules.items()
                                          for line in _mutates_a_namespace(m)],
        "assigns to an argparse Namespace": [f"{name}: {where}" for name, m in modules.items()
                                             for where in _assigns_to_a_namespace(m)],
    }
    return found


def test_the_graph_sees_every_module_and_resolves_imports():
    modules = import_graph()
    files = sum(1 for folder in FOLDERS for _ in (ROOT / folder).rglob("*.py"))
    assert len(modules) == files
    layer = layers(modules)
    assert {"entry", "harness", "paper", "library", "figure-helper"} <= set(layer.values())
    assert "toymodel.theory" in modules["toymodel.simulate"].imports        # from toymodel.theory import ...
    assert "empirical.noise" in modules["empirical.attacks"].imports
    assert layer["empirical.table1"] == "entry" and layer["empirical.noise"] == "library"
    assert layer["toymodel.argtypes"] == "cli-helper" and layer["benchmarks.bench_toymodel"] == "entry"


def test_relative_and_function_level_imports_are_resolved(tmp_path):
    pkg = tmp_path / "empirical"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from ..top import g\n    return g\n")
    (pkg / "top.py").write_text("from .sub.leaf import f\nif __name__ == '__main__':\n    f()\n")
    modules = import_graph(tmp_path)
    assert modules["empirical.sub"].imports == {"empirical.sub.leaf"}
    assert modules["empirical.sub.leaf"].imports == {"empirical.top"}
    assert modules["empirical.top"].imports == {"empirical.sub.leaf"}
    found = violations(modules)
    assert found["imports an entry point"] == ["empirical.sub.leaf -> empirical.top"]
    assert found["import cycle"] == ["empirical.sub.leaf -> empirical.top -> empirical.sub.leaf"]


def test_the_checks_catch_each_kind_of_leak(tmp_path):
    for folder in ("empirical/harness", "empirical/paper", "toymodel"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "empirical" / "__init__.py").write_text("")
    (tmp_path / "empirical" / "lib.py").write_text(
        "import argparse\nfrom empirical.harness import store\n\ndef f(parser):\n    print(1)\n    parser.error('x')\n")
    (tmp_path / "empirical" / "harness" / "store.py").write_text("from empirical.paper import rules\n")
    (tmp_path / "empirical" / "paper" / "rules.py").write_text("")
    (tmp_path / "toymodel" / "cli.py").write_text("def main(args):\n    setattr(args, 'n', 1)\n    args.a, args.b = 1, 2\n")
    (tmp_path / "toymodel" / "types.py").write_text("import argparse\n")
    (tmp_path / "toymodel" / "run.py").write_text("from toymodel import types\nif __name__ == '__main__':\n    pass\n")
    (tmp_path / "toymodel" / "cli_types.py").write_text("from argparse import ArgumentTypeError\n")
    (tmp_path / "toymodel" / "uses.py").write_text("from toymodel.cli_types import ArgumentTypeError\n")
    (tmp_path / "toymodel" / "run2.py").write_text("import toymodel.cli_types\nif __name__ == '__main__':\n    pass\n")
    assert layers(import_graph(tmp_path))["toymodel.types"] == "cli-helper"
    found = violations(import_graph(tmp_path))
    assert found["crosses a layer"] == ["empirical.harness.store (harness) -> empirical.paper (paper)",
                                        "empirical.harness.store (harness) -> empirical.paper.rules (paper)",
                                        "empirical.lib (library) -> empirical.harness (harness)",
                                        "empirical.lib (library) -> empirical.harness.store (harness)"]
    assert found["library parses arguments"] == ["empirical.lib", "toymodel.cli_types"]   # a library module uses it
    assert found["library prints or exits"] == ["empirical.lib: print at line 5", "empirical.lib: parser.error at line 6"]
    assert found["mutates an argparse Namespace"] == ["toymodel.cli: line 2"]
    assert found["assigns to an argparse Namespace"] == ["toymodel.cli: args.a at line 3", "toymodel.cli: args.b at line 3"]


def test_no_module_imports_an_entry_point():
    assert violations(import_graph())["imports an entry point"] == []


def test_library_imports_neither_harness_nor_paper_and_harness_not_paper():
    assert violations(import_graph())["crosses a layer"] == []


def test_no_import_cycle():
    assert violations(import_graph())["import cycle"] == []


def test_library_neither_parses_arguments_nor_prints():
    found = violations(import_graph())
    assert found["library parses arguments"] == []
    assert found["library prints or exits"] == []


def test_nothing_mutates_a_namespace():
    assert violations(import_graph())["mutates an argparse Namespace"] == []


def test_nothing_assigns_to_a_namespace():
    assert violations(import_graph())["assigns to an argparse Namespace"] == []


if __name__ == "__main__":
    report = violations(import_graph(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
    for rule, lines in report.items():
        print(f"{rule}: {len(lines)}")
        for line in lines:
            print(f"  {line}")
