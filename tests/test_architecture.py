"""The package's layers: no import cycle, and no module importing a layer above its own.

Layers, lowest first (transpiler/__init__.py lists them): errors and options
are leaves; then io, ir, knowledge, engine, passes, backends, pipeline, cli.
runtimes/ stands beside io (it starts real TF releases and imports nothing of
the package). Imports are read from the source (ast), function-level ones
included, so a lazy import cannot hide an upward dependency.
"""

import ast
import pathlib

import networkx as nx

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "transpiler"

LAYERS = ["errors", "options", "version", "runtimes", "io", "ir", "knowledge", "engine", "passes", "backends", "pipeline", "verify", "cli"]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "transpiler":
                yield from ("transpiler." + a.name for a in node.names)
            elif node.module.startswith("transpiler."):
                yield node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError("%s: relative import; use absolute transpiler.* imports" % path)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("transpiler."))


def layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    return LAYERS.index(top) if top in LAYERS else len(LAYERS)


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        graph.add_node(source)
        for target in imports(path):
            known = target if (PACKAGE.parent / (target.replace(".", "/") + ".py")).exists() or \
                (PACKAGE.parent / target.replace(".", "/") / "__init__.py").exists() else target.rsplit(".", 1)[0]
            graph.add_edge(source, known)
    return graph


def test_every_module_belongs_to_a_layer():
    unknown = sorted(m for m in import_graph() if m not in ("transpiler", "transpiler.__main__")
                     and layer(m) == len(LAYERS))
    assert not unknown, "modules outside the layers: %s" % unknown


def test_no_module_imports_a_layer_above_its_own():
    upward = [(a, b) for a, b in import_graph().edges
              if a not in ("transpiler", "transpiler.__main__") and layer(b) > layer(a)]
    assert not upward, "upward imports: %s" % upward


def test_no_import_cycles():
    # a package's __init__ re-exporting its own modules is not a cycle between modules
    graph = import_graph()
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles: %s" % cycles


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk itself works: a function-level upward import is found."""
    bad = PACKAGE / "ir" / "_upward_probe.py"
    bad.write_text("def f():\n    from transpiler.pipeline.convert import plan\n")
    try:
        edges = [(a, b) for a, b in import_graph().edges if layer(b) > layer(a)]
        assert ("transpiler.ir._upward_probe", "transpiler.pipeline.convert") in edges
    finally:
        bad.unlink()
