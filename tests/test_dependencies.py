"""The apps depend one way (docs/ARCHITECTURE.md, "Layers"): each imports only itself and the
layers below it, at module level or inside a function alike, and nothing imports in a cycle.

A small walk of every module's syntax tree (migrations left out: they name other apps'
migrations by string, as Django wants); no Django needed. ``tests/`` and ``bench/`` sit on top
of everything and are not walked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first. An app imports its own modules and those of the layers below it; apps that
# share a layer know nothing of each other.
LAYERS = (
    ("rokt_platform",),  # wiring: settings, urls, Celery, the admin site, /healthz
    ("referrals",),
    ("customfields",),
    ("deliveries",),
    ("exports", "dashboard", "metrics"),
    ("privacy",),  # retention, erasure, the access log: reads and removes from all of them
    ("demo",),  # what scripts/run-demo adds, on top of everything
)
LAYER = {app: number for number, apps in enumerate(LAYERS) for app in apps}
ON_TOP = ("tests",)  # the repository's packages in no layer


@dataclass(frozen=True)
class Import:
    where: str  # "deliveries/ledger.py:22"
    importer: str  # the importing module, "deliveries.ledger"
    module: str  # the module imported, absolute: "referrals.hooks"
    top_level: bool  # at module level: runs when the importer is imported

    @property
    def apps(self) -> tuple[str, str]:
        return self.importer.split(".")[0], self.module.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every import in ``path``, and whether it runs at module level (not in a function)."""
    importer = module_name(path, root)
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]

    def found(node: ast.stmt, module: str, top_level: bool) -> Import:
        where = f"{path.relative_to(root)}:{node.lineno}"
        return Import(where, importer, module, top_level)

    def walk(node: ast.AST, top_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield from (found(child, alias.name, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from this package, up ``level - 1``
                    stem = package[: len(package) - child.level + 1]
                    base = ".".join([*stem, base] if base else stem)
                # "from deliveries import ledger" imports a module, "from x import name" x.
                modules = [
                    f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}", root) else base
                    for alias in child.names
                ]
                yield from (found(child, module, top_level) for module in dict.fromkeys(modules))
            else:
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, top_level and not inner)

    yield from walk(ast.parse(path.read_text(), filename=str(path)), True)


def _is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def all_imports(root: Path = ROOT) -> list[Import]:
    paths = sorted(
        path for app in LAYER for path in (root / app).rglob("*.py")
        if "migrations" not in path.relative_to(root).parts
    )  # fmt: skip
    return [found for path in paths for found in imports_of(path, root)]


def against_the_layers(imports: Iterable[Import]) -> list[str]:
    wrong = []
    for found in imports:
        importer, imported = found.apps
        if imported in LAYER and imported != importer and LAYER[imported] >= LAYER[importer]:
            inside = "" if found.top_level else " inside a function"
            wrong.append(f"{found.where}: {importer} imports {found.module}{inside}, and "
                         f"{imported} is not below it (docs/ARCHITECTURE.md, Layers)")  # fmt: skip
    return wrong


def a_cycle(edges: dict[str, dict[str, Import]]) -> list[str] | None:
    """One cycle of the graph (node -> node it imports -> the import), as the imports that
    make it: "file:line: a imports b"."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            loop = [*path[path.index(node) :], node]
            return [f"{edges[a][b].where}: {a} imports {b}" for a, b in pairwise(loop)]
        if node in done:
            return None
        for target in sorted(edges.get(node, {})):
            if cycle := visit(target, [*path, node]):
                return cycle
        done.add(node)
        return None

    for start in sorted(edges):
        if cycle := visit(start, []):
            return cycle
    return None


def app_graph(imports: Iterable[Import]) -> dict[str, dict[str, Import]]:
    edges: dict[str, dict[str, Import]] = {}
    for found in imports:
        importer, imported = found.apps
        if imported in LAYER and imported != importer:
            edges.setdefault(importer, {}).setdefault(imported, found)
    return edges


def module_graph(imports: Iterable[Import]) -> dict[str, dict[str, Import]]:
    """Imports at module level between the apps' modules (a package imports its own parent
    package anyway: not an edge)."""
    edges: dict[str, dict[str, Import]] = {}
    for found in imports:
        own_package = found.importer.startswith(found.module + ".")
        if found.top_level and found.apps[1] in LAYER and not own_package:
            edges.setdefault(found.importer, {}).setdefault(found.module, found)
    return edges


def test_every_package_of_the_repository_is_in_a_layer():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - set(ON_TOP) == set(LAYER)


def test_every_import_points_down_the_layers():
    wrong = against_the_layers(all_imports())
    assert not wrong, "\n".join(wrong)


def test_no_app_imports_another_in_a_cycle():
    cycle = a_cycle(app_graph(all_imports()))
    assert cycle is None, "apps import each other in a cycle:\n" + "\n".join(cycle or ())


def test_no_module_imports_another_in_a_cycle_at_module_level():
    """Python half-imports a module caught in such a cycle."""
    cycle = a_cycle(module_graph(all_imports()))
    assert cycle is None, "modules import each other in a cycle:\n" + "\n".join(cycle or ())


def test_the_walk_names_an_import_against_the_layers_and_a_cycle(tmp_path):
    """On a made-up repository: an import up the layers inside a function is named by file
    and line, and two apps importing each other are a cycle."""
    (tmp_path / "referrals").mkdir()
    (tmp_path / "deliveries").mkdir()
    (tmp_path / "referrals" / "a.py").write_text(
        "import os\n\n\ndef f():\n    from deliveries.b import g\n"
    )
    (tmp_path / "deliveries" / "b.py").write_text("from referrals import a\n\ng = 1\n")

    imports = all_imports(tmp_path)

    assert against_the_layers(imports) == [
        "referrals/a.py:5: referrals imports deliveries.b inside a function, and deliveries "
        "is not below it (docs/ARCHITECTURE.md, Layers)"
    ]
    assert a_cycle(app_graph(imports)) == [
        "deliveries/b.py:1: deliveries imports referrals",
        "referrals/a.py:5: referrals imports deliveries",
    ]
    assert a_cycle(module_graph(imports)) is None  # one side is inside a function
