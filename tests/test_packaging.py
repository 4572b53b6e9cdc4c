"""What the package declares it needs is what its code imports (DEVELOPERS.md: numpy, graphviz,
graphviz-pure, matplotlib; torch optional, imported only by rnn.from_torch / to_torch), and the
layers import downwards only: tinygraph -> rnn -> viz."""

import ast
import configparser
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
DECLARED = {"numpy", "graphviz", "matplotlib"}      # graphviz-pure is the renderer, not imported
OWN = {"tinygraph", "rnn", "viz"}


def _imports(package):
    """{top-level module name: [files importing it]} over the package's absolute imports."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names:
                        found.setdefault(top, []).append(os.path.relpath(path, ROOT))
    return found


def _install_requires():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config["options"]["install_requires"].strip().splitlines()
    return dict(re.match(r"([\w-]+)\s*(.*)", line.strip()).groups() for line in lines)


def test_every_import_is_a_declared_dependency_and_torch_only_in_the_torch_bridge():
    declared = {name.replace("-", "_") for name in _install_requires()}
    assert DECLARED <= declared
    for package in OWN:
        for module, files in _imports(package).items():
            if module == "torch":
                assert files == [os.path.join("rnn", "pytorch.py")], files
            else:
                assert module in DECLARED | OWN, (module, files)


def test_the_layers_import_downwards_only():
    assert not {"rnn", "viz"} & set(_imports("tinygraph"))
    assert "viz" not in _imports("rnn")


def test_the_declared_numpy_floor_is_one_the_code_runs_on():
    # tinygraph.ops imports numpy.lib.array_utils, new in numpy 2.0 (and the dtype rules the
    # README states are NEP 50's, numpy 2's): setup.cfg asked for numpy>=1.24, which installs a
    # numpy that `import tinygraph` fails on
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+).*", _install_requires()["numpy"])
    assert floor and (int(floor.group(1)), int(floor.group(2))) >= (2, 0)
    import numpy.lib.array_utils    # noqa: F401 - present in the numpy the tests run on
