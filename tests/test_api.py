"""The public API is pinned: what __all__ promises exists, and importing the package stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vidrestore


def test_all_is_pinned_and_resolvable():
    assert sorted(vidrestore.__all__) == [
        "Face",
        "RestoreOptions",
        "RestoreStats",
        "VidrestoreError",
        "__version__",
        "align_face",
        "errors",
        "load_detector",
        "load_restorer",
        "options",
        "restore_folder",
        "restore_image",
        "restore_video",
        "run_live",
    ]
    for name in vidrestore.__all__:
        assert getattr(vidrestore, name) is not None
    assert callable(vidrestore.load_restorer) and callable(vidrestore.load_detector)
    assert callable(vidrestore.restore_folder) and callable(vidrestore.run_live)
    assert vidrestore.options.RestoreOptions is vidrestore.RestoreOptions


def test_error_tree():
    e = vidrestore.errors
    for cls in (e.UsageError, e.MediaError, e.OutputError, e.WeightsError, e.CheckpointError, e.DeviceError):
        assert issubclass(cls, vidrestore.VidrestoreError)
    assert issubclass(e.ChecksumError, e.WeightsError)


def test_import_does_not_load_torch():
    code = "import sys, vidrestore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------ layout rules

PACKAGE = Path(vidrestore.__file__).resolve().parent


def _module_names() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """vidrestore modules ``name`` imports at run time (lazy imports in functions count; TYPE_CHECKING ones don't)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
        found.update(subs)
        if len(subs) < len(node.names) and target in modules:  # names defined in the module itself
            found.add(target)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_vidrestore_modules():
    modules = _module_names()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


# ------------------------------------------------------------------------------------------------ size rules

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _oversized(root: Path) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions (methods, nested ones too) over MAX_FUNCTION_LINES lines,
    decorators included, under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                span = (node.end_lineno or node.lineno) - first + 1
                if span > MAX_FUNCTION_LINES:
                    found.append(f"{rel}:{node.lineno} {node.name}: {span} lines")
    return found


def test_size_rule_finds_a_long_module_and_a_long_function(tmp_path):
    (tmp_path / "ok.py").write_text("def f():\n    return 1\n")
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    body = "".join(f"        y{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "fn.py").write_text(f"class C:\n    @staticmethod\n    def g():\n{body}")
    assert _oversized(tmp_path) == ["fn.py:3 g: 82 lines", f"long.py: {MAX_MODULE_LINES + 1} lines"]


def test_no_module_over_400_lines_and_no_function_over_80():
    assert _oversized(PACKAGE) == []
