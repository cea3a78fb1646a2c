"""The layer rule of ``docs/architecture.md``, checked over every module of ``avdiff/`` by reading its imports (AST).

Layers, lowest first; a module may import its own layer and the layers below it, never one above:

    _extras, _lazy, user_files, bundled, presets  (resources and helpers that import nothing from avdiff)
    audio, video
    encoders, models
    metrics                       (leaf scorers)
    data
    pipelines, loading
    evaluation
    batch                         (batch jobs from a manifest, across processes)
    training
    bench
    commands, demo, cli

Every import counts: at module level, inside functions and under ``if TYPE_CHECKING:`` (an annotation that names a
higher layer is a dependency on it, even if it never runs). Also: no two packages import each other (directly or
round a longer loop), no two files do, and avdiff imports inside functions are only in ``commands/``, ``cli.py`` and
``demo/`` (the CLI's fast ``--help`` and the demo's lazy loading).

A violation fails the test with the file, the line and the rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, ...]] = [
    ("_extras", "_lazy", "user_files", "bundled", "presets"),
    ("audio", "video"),
    ("encoders", "models"),
    ("metrics",),
    ("data",),
    ("pipelines", "loading"),
    ("evaluation",),
    ("batch",),
    ("training",),
    ("bench",),
    ("commands", "demo", "cli", "__main__"),
]
FUNCTION_IMPORTS_ALLOWED = {"commands", "demo", "cli"}
MAX_AVDIFF_MODULES = 33  # loaded by `from avdiff.pipelines import TalkingHeadPipeline` (models.cfg: the null rule;
# audio.pitch and its numba_cache: the pitch rows of a motion model with pitch_features)


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. avdiff.audio.clock
    imported: str  # the avdiff module it names (the deepest that exists)
    path: Path
    line: int
    in_function: bool
    type_checking: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted((root / "avdiff").rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(root: Path) -> list[Import]:
    """Every import of an avdiff module by an avdiff module."""
    known = modules(root)
    found: list[Import] = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]

        # visit runs to completion within this pass of the loop, so it reads this pass's mod, path and package
        def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
            for child in ast.iter_child_nodes(node):
                fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                tc = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")  # noqa: B023
                        parts = parts[: len(parts) - (child.level - 1)]
                        base = ".".join(parts + ([child.module] if child.module else []))
                    # `from avdiff.video import face` names the module avdiff.video.face
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names]
                for target in targets:
                    resolved = _resolve(target, known) if target.startswith("avdiff") else None
                    if resolved and resolved != mod:  # noqa: B023
                        found.append(Import(mod, resolved, path, child.lineno, in_function, type_checking))  # noqa: B023
                visit(child, fn, tc)

        visit(tree, False, False)
    return list(dict.fromkeys(found))  # one record per import line and target


def top(module: str) -> str:
    """The package (or top-level module) a module belongs to: avdiff.audio.clock -> audio; avdiff -> avdiff."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str) -> int | None:
    if module == "avdiff":
        return 0
    for i, names in enumerate(LAYERS):
        if top(module) in names:
            return i
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    nodes = sorted(set(graph) | {w for ws in graph.values() for w in ws})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
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
                        out.append(sorted(comp))
    return out


def _shortest_loop(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """The shortest loop through ``comp[0]`` inside the component: [a, b, ..., a]."""
    start, inside = comp[0], set(comp)
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return list(reversed(path)) + [start]
            if w in inside and w not in parents:
                parents[w] = v
                queue.append(w)
    raise AssertionError(f"no loop through {start}")  # a strongly connected component always has one


def violations(root: Path) -> dict[str, list[str]]:
    """Every violation of the rules: key (stable) -> messages naming file, line, rule."""
    found: dict[str, list[str]] = defaultdict(list)
    for mod in modules(root):
        if layer_of(mod) is None:
            found[f"no layer: {mod}"].append(
                f"{mod}: its package {top(mod)!r} is in no layer of LAYERS in "
                f"tests/test_layers.py (place it there and in docs/architecture.md)"
            )
    all_imports = imports(root)
    for imp in all_imports:
        where = f"{imp.path.relative_to(root)}:{imp.line}"
        lo, li = layer_of(imp.importer), layer_of(imp.imported)
        if lo is not None and li is not None and li > lo:
            kind = "inside a function" if imp.in_function else "under TYPE_CHECKING" if imp.type_checking else ""
            found[f"upward: {imp.importer} -> {imp.imported}"].append(
                f"{where}: {imp.importer} imports {imp.imported} {kind}".rstrip()
                + f": layer rule: {'/'.join(LAYERS[lo])} (layer {lo}) may not import "
                f"{'/'.join(LAYERS[li])} (layer {li}), a higher layer"
            )
        if imp.in_function and top(imp.importer) not in FUNCTION_IMPORTS_ALLOWED:
            found[f"function import: {imp.importer} -> {imp.imported}"].append(
                f"{where}: {imp.importer} imports {imp.imported} inside a function: avdiff imports inside functions "
                f"are only for {', '.join(sorted(FUNCTION_IMPORTS_ALLOWED))}; import it at module level"
            )
    # cycles, over every import
    files: dict[str, set[str]] = defaultdict(set)
    packages: dict[str, set[str]] = defaultdict(set)
    where_pkg: dict[tuple[str, str], str] = {}
    for imp in all_imports:
        files[imp.importer].add(imp.imported)
        a, b = top(imp.importer), top(imp.imported)
        if a != b:
            packages[a].add(b)
            where_pkg.setdefault((a, b), f"{imp.path.relative_to(root)}:{imp.line} ({imp.importer} -> {imp.imported})")
    for comp in _cycles(packages):
        loop = _shortest_loop(packages, comp)
        hops = [where_pkg[(a, b)] for a, b in zip(loop, loop[1:])]
        found[f"package cycle: {' <-> '.join(comp)}"].append(
            f"packages {' -> '.join(loop)} import each other (no package cycles): {'; '.join(hops)}"
        )
    where_file: dict[tuple[str, str], str] = {}
    for imp in all_imports:
        where_file.setdefault((imp.importer, imp.imported), f"{imp.path.relative_to(root)}:{imp.line}")
    for comp in _cycles(files):
        loop = _shortest_loop(files, comp)
        hops = [f"{where_file[(a, b)]} ({a} -> {b})" for a, b in zip(loop, loop[1:])]
        found[f"file cycle: {' <-> '.join(comp)}"].append(
            f"files import each other round a loop of {len(loop) - 1} (no file cycles; {len(comp)} files are in it): "
            f"{'; '.join(hops)}"
        )
    return dict(found)


def test_layers_point_down_with_no_cycles_and_no_function_imports():
    found = violations(ROOT)
    new = found
    assert not new, (
        f"{sum(map(len, new.values()))} violation(s) of the layer rule (see docs/architecture.md):\n"
        + "\n".join(m for msgs in new.values() for m in msgs)
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_finds_each_kind_of_violation(tmp_path):
    root = _tree(
        tmp_path,
        {
            "avdiff/__init__.py": "",
            "avdiff/audio/__init__.py": "",
            "avdiff/audio/clock.py": "import avdiff.pipelines\n",
            "avdiff/audio/io.py": "import typing\nif typing.TYPE_CHECKING:\n    from avdiff.models import unet\n",
            "avdiff/models/__init__.py": "",
            "avdiff/models/unet.py": "def f():\n    from ..audio import clock\n",
            "avdiff/video/__init__.py": "",
            "avdiff/video/a.py": "from avdiff.video import b\n",
            "avdiff/video/b.py": "from . import a\n",
            "avdiff/pipelines/__init__.py": "from avdiff.audio import clock\n",
            "avdiff/commands/__init__.py": "def main():\n    import avdiff.pipelines\n",
            "avdiff/newpkg/__init__.py": "",
        },
    )
    found = violations(root)
    assert set(found) == {
        "upward: avdiff.audio.clock -> avdiff.pipelines",
        "upward: avdiff.audio.io -> avdiff.models.unet",
        "function import: avdiff.models.unet -> avdiff.audio.clock",
        "package cycle: audio <-> models <-> pipelines",  # audio -> models under TYPE_CHECKING counts too
        "file cycle: avdiff.audio.clock <-> avdiff.pipelines",
        "file cycle: avdiff.video.a <-> avdiff.video.b",
        "no layer: avdiff.newpkg",
    }, sorted(found)
    (message,) = found["upward: avdiff.audio.clock -> avdiff.pipelines"]
    assert message.startswith("avdiff/audio/clock.py:1: avdiff.audio.clock imports avdiff.pipelines: layer rule")
    assert "under TYPE_CHECKING" in found["upward: avdiff.audio.io -> avdiff.models.unet"][0]
    assert "avdiff/models/unet.py:2" in found["function import: avdiff.models.unet -> avdiff.audio.clock"][0]


def test_importing_one_pipeline_loads_few_avdiff_modules():
    code = (
        "import sys; from avdiff.pipelines import TalkingHeadPipeline; "
        "print(sum(m.startswith('avdiff') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    count = int(out.stdout.strip().splitlines()[-1])
    assert count <= MAX_AVDIFF_MODULES, f"importing TalkingHeadPipeline loads {count} avdiff modules"
