"""The package's layout rules (docs/design.md, "Layers"): each folder
imports only from the layers below it, folders of one layer not from each
other, no module takes part in an import cycle, and config files import
only the configuration layer."""

import ast
import pathlib
import re

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "flax_sentiment"
DESIGN = REPO / "docs" / "design.md"


def layers() -> dict[str, int]:
  """folder (or "." for the package's own modules) -> its layer, read from
  the numbered lines of design.md's layer block: `N name[, name]  ...`."""
  text = DESIGN.read_text()
  block = text.split("```layers", 1)[1].split("```", 1)[0]
  found = {}
  for line in block.strip().splitlines():
    number, names = re.match(r"\s*(\d+)\s+([\w., ]+?)(?:\s{2,}|$)",
                             line).groups()
    for name in names.split(","):
      found[name.strip().rstrip("/")] = int(number)
  return found


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, known: set[str]) -> set[str]:
  """The flax_sentiment modules a file imports, anywhere in it (a name
  imported from a package counts as its module when it is one)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        found.add(full if full in known else node.module)
  return {m for m in found if m in known}


def package_graph() -> dict[str, set[str]]:
  files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
  known = set(files)
  return {name: imported_modules(path, known) - {name}
          for name, path in files.items()}


def folder(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 2 else "."


def layer_errors(graph: dict[str, set[str]], layer: dict[str, int]
                 ) -> list[str]:
  errors = []
  for module, imports in graph.items():
    here = folder(module)
    for target in imports:
      there = folder(target)
      if target == "flax_sentiment" or here == there:
        continue
      if layer[there] > layer[here]:
        errors.append(f"{module} imports {target} from a higher layer")
      elif layer[there] == layer[here]:
        errors.append(f"{module} imports {target} beside it (one layer)")
  return errors


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The import cycles among modules (Tarjan's strongly connected
  components of more than one module)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for nxt in graph.get(node, ()):
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        top = stack.pop()
        on_stack.discard(top)
        component.append(top)
        if top == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_every_folder_has_a_layer():
  folders = {p.name for p in PACKAGE.iterdir()
             if p.is_dir() and (p / "__init__.py").exists()}
  assert folders | {"."} == set(layers())


def test_imports_run_only_downward():
  assert layer_errors(package_graph(), layers()) == []


def test_no_import_cycles():
  assert cycles(package_graph()) == []


def test_config_files_import_only_the_configuration_layer():
  for path in (REPO / "configs").glob("*.py"):
    for module in imported_modules(path, set(package_graph())):
      assert module.startswith("flax_sentiment.configuration"), (path,
                                                                 module)


# The checks themselves, on small made-up graphs where they must object.
LAYER = {".": 3, "usage": 2, "data": 1, "model": 1, "runtime": 0}


@pytest.mark.parametrize("graph, want", [
    ({"flax_sentiment.data.datasets.text": {"flax_sentiment.usage.predict"}},
     "higher layer"),
    ({"flax_sentiment.data.datasets.text": {"flax_sentiment.model.cells"}}, "beside"),
    ({"flax_sentiment.runtime.errors": {"flax_sentiment.api"}},
     "higher layer"),
])
def test_layer_check_objects(graph, want):
  errors = layer_errors(graph, LAYER)
  assert len(errors) == 1 and want in errors[0]


def test_layer_check_allows_downward_and_same_folder():
  graph = {"flax_sentiment.usage.predict": {"flax_sentiment.data.datasets.text",
                                            "flax_sentiment.usage.trained",
                                            "flax_sentiment.runtime.errors"},
           "flax_sentiment.api": {"flax_sentiment.usage.predict"}}
  assert layer_errors(graph, LAYER) == []


def test_cycle_check_finds_a_loop_through_three_modules():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert cycles(graph) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


# Modules allowed past the size limit, and why (docs/design.md says so too).
LONG_MODULES = {
    "flax_sentiment/model/pallas_recurrence.py": "the GPU kernels",
    "flax_sentiment/usage/exported.py": "the export's loader: one "
                                        "self-contained file, copied into "
                                        "every export",
}
MAX_MODULE_LINES = 380  # ~350, with room for a docstring's growth
MAX_FUNCTION_LINES = 62


def test_modules_and_functions_stay_small():
  too_long = []
  for path in sorted(PACKAGE.rglob("*.py")):
    name = str(path.relative_to(REPO))
    source = path.read_text()
    if name not in LONG_MODULES and len(source.splitlines()) > (
        MAX_MODULE_LINES):
      too_long.append(f"{name}: {len(source.splitlines())} lines")
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES and name not in LONG_MODULES:
          too_long.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
  assert too_long == []


@pytest.mark.parametrize("old, new", [
    ("predict", "usage.predict"), ("export", "usage.export"),
    ("serve", "usage.serve"), ("report", "usage.report"),
    ("exported", "usage.exported"), ("pretrain", "data.word_vectors")])
def test_names_users_knew_before_the_move_are_the_new_modules(old, new):
  import importlib  # pylint: disable=g-import-not-at-top
  assert (importlib.import_module(f"flax_sentiment.{old}")
          is importlib.import_module(f"flax_sentiment.{new}"))


@pytest.mark.parametrize("command", ["predict", "export", "serve", "report"])
def test_old_module_commands_still_run(command):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  proc = subprocess.run([sys.executable, "-m", f"flax_sentiment.{command}",
                         "--help"], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env={"JAX_PLATFORMS": "cpu",
                                          "PATH": "/usr/bin:/bin",
                                          "PYTHONPATH": str(REPO)})
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith("usage:")
