"""The package's layers are what its docstring says (issue 42): no module imports one that
the docstring lists after it, and every module is listed."""

import ast
import re

import gpen_ext
from helpers import ROOT

PACKAGE = ROOT / "gpen_ext"


def local_imports(path):
    """The package's own modules a module imports (first name after the dots)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module.split(".")[0]] if node.module else
                         [alias.name for alias in node.names])
    return names - {path.stem}


def test_no_module_imports_a_later_layer():
    layers = gpen_ext.__doc__.split("Layers, each using only those before it:")[1]
    order = [name for name in re.findall(r"`(\w+)`", layers.split("From Python:")[0])]
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(order), sorted(modules - set(order))
    place = {name: index for index, name in enumerate(order)}
    later = {module: sorted(name for name in local_imports(PACKAGE / f"{module}.py")
                            if place.get(name, -1) > place[module]) for module in modules}
    assert {module: names for module, names in later.items() if names} == {}
