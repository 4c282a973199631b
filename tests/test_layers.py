"""The three layers stay apart: the library never parses arguments or prints, entry points never import
one another, and no code steers a run by mutating an argparse Namespace."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"empirical.table1", "empirical.table2", "empirical.sweep_tstar", "empirical.subsequence",
                "empirical.ema", "empirical.projection", "empirical.paper_checks", "empirical.train_digits",
                "empirical.audit", "empirical.fd_floor", "figures.fig1", "figures.fig3", "figures.fig4",
                "figures.fig_s1c", "toymodel.sweep", "toymodel.checks", "benchmarks.bench_gpu",
                "benchmarks.bench_power", "benchmarks.bench_purify", "benchmarks.bench_toymodel"}
LIBRARY = ["empirical/" + name for name in ("noise.py", "purifiers.py", "gradients.py", "attacks.py", "predict.py",
                                            "trajectories.py", "frechet.py", "data.py", "checkpoints.py",
                                            "protocol.py", "results.py", "stats.py", "replay.py", "auditing.py")]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _modules():
    for folder in ("empirical", "figures", "toymodel", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


def test_no_module_imports_an_entry_point():
    bad = [(name, sorted(_imports(path) & ENTRY_POINTS)) for name, path in _modules()
           if _imports(path) & (ENTRY_POINTS - {name})]
    assert bad == []


def test_library_modules_neither_parse_arguments_nor_print():
    for rel in LIBRARY:
        path = ROOT / rel
        if not path.exists():
            continue
        text = path.read_text()
        assert "argparse" not in _imports(path), rel
        assert "parser.error" not in text and "print(" not in text, rel


def test_nothing_mutates_a_namespace():
    for _, path in _modules():
        assert "setattr(args" not in path.read_text(), path
