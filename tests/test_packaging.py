"""What pyproject.toml promises about versions: its floors are the ones
CI's second lane installs (.ci/floors.txt), so each floor has been run."""

import re
import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def floors_of(requirements: list[str]) -> dict[str, str]:
  """name -> the version after `>=` (names normalized as pip does)."""
  found = {}
  for requirement in requirements:
    match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", requirement)
    if match:
      found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
  return found


def pinned() -> dict[str, str]:
  pins = {}
  for line in (REPO / ".ci" / "floors.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
      name, version = line.split("==")
      pins[re.sub(r"[-_.]+", "-", name).lower()] = version
  return pins


def test_every_floor_is_what_the_floor_lane_installs():
  project = PYPROJECT["project"]
  floors = floors_of(project["dependencies"])
  floors.update(floors_of(project["optional-dependencies"]["dev"]))
  pins = pinned()
  assert {name: pins.get(name) for name in floors} == floors


def test_every_core_dependency_has_a_floor():
  names = [re.match(r"[A-Za-z0-9_.-]+", r)[0]
           for r in PYPROJECT["project"]["dependencies"]]
  assert set(floors_of(PYPROJECT["project"]["dependencies"])) == {
      re.sub(r"[-_.]+", "-", n).lower() for n in names}


def test_test_tools_have_upper_bounds():
  dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
  for tool in ("pytest", "pytest-xdist"):
    spec, = [r for r in dev if re.match(rf"{tool}\b(?!-)", r)]
    assert "<" in spec, spec


def test_floor_parser_reads_what_pip_reads():
  assert floors_of(["jax>=0.10.2", "tensorboardX>=2.6.2.2  # x",
                    "importlib_resources", "pytest>=9.0,<9.3"]) == {
                        "jax": "0.10.2", "tensorboardx": "2.6.2.2",
                        "pytest": "9.0"}
