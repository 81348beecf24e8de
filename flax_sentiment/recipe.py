"""Train a recipe's members, ensemble them on validation, report.

  flax-sentiment recipe [--config best] [--workdir runs/best] [--seeds 0,1,2]

A recipe is a config file with `get_recipe()` (e.g. configs/best.py), which
returns a `Recipe`: members (name -> config), which of them run once per
seed, and the seeds. The command trains every member run that is not
finished (`<workdir>/<name>-seed<S>` for seeded members, `<workdir>/<name>`
for the others; a finished one is skipped, a stopped one resumes), then
writes, with weights chosen on validation (`ensemble`):

  <workdir>/ensemble-seed<S>/ensemble.json  each seed's members + the others
  <workdir>/ensemble_all/ensemble.json      every seed's members + the others
  <workdir>/report.md, report.png           a row per member and ensemble
"""

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Callable

import ml_collections

from flax_sentiment.configuration import loading
from flax_sentiment.configuration.recipes import Recipe
from flax_sentiment.training import checks
from flax_sentiment.runtime.errors import ConfigError, UserError

DEFAULT_RECIPE = "best"


@dataclasses.dataclass(frozen=True)
class MemberRun:
  name: str                           # e.g. best_cpu-seed1
  config: ml_collections.ConfigDict   # the member's config, seed set
  workdir: pathlib.Path
  seed: int | None                    # None: an unseeded member


def load_recipe(spec: str) -> Recipe:
  """`get_recipe()` of the config file `spec` names (a ConfigError naming
  the file if it has none or it does not return a Recipe)."""
  path = loading.find(spec)
  module = loading.load_module(path)
  get_recipe = getattr(module, "get_recipe", None)
  if not callable(get_recipe):
    raise ConfigError(f"config file {path} has no get_recipe() function; "
                      f"pass a recipe such as --config {DEFAULT_RECIPE}")
  recipe = loading.call(path, get_recipe)
  if not isinstance(recipe, Recipe) or not set(recipe.seeded) <= set(
      recipe.members):
    raise ConfigError(f"config file {path}: get_recipe() must return a "
                      f"flax_sentiment.configuration.recipes.Recipe whose seeded names are "
                      f"members")
  return recipe


def member_runs(recipe: Recipe, workdir: pathlib.Path,
                seeds: tuple[int, ...]) -> list[MemberRun]:
  """Every run of the recipe: seeded members once per seed (seed-major),
  then the others."""
  runs = []
  for seed in seeds:
    for name in recipe.seeded:
      config = ml_collections.ConfigDict(recipe.members[name].to_dict())
      config.seed = seed
      runs.append(MemberRun(f"{name}-seed{seed}", config,
                            workdir / f"{name}-seed{seed}", seed))
  for name, config in recipe.members.items():
    if name not in recipe.seeded:
      runs.append(MemberRun(name, config, workdir / name, None))
  return runs


def ensembles(runs: list[MemberRun], recipe: Recipe, workdir: pathlib.Path,
              seeds: tuple[int, ...]) -> dict[pathlib.Path, list[pathlib.Path]]:
  """Output directory -> member workdirs: one ensemble per seed (its seeded
  runs + the unseeded members), and one of all (with more than one seed)."""
  once = [r.workdir for r in runs if r.seed is None]
  by_seed = {seed: [r.workdir for r in runs if r.seed == seed]
             for seed in seeds}
  out = {workdir / f"ensemble-seed{seed}": members + once
         for seed, members in by_seed.items()}
  if len(seeds) > 1:
    out[workdir / "ensemble_all"] = [w for m in by_seed.values()
                                     for w in m] + once
  return {d: members for d, members in out.items() if len(members) > 1}


def is_finished(run: MemberRun) -> bool:
  """Whether the run's workdir holds a finished run of this config (a
  workdir with other settings raises the train command's one line)."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  from flax_sentiment.tracking.rundir import RunDir  # pylint: disable=g-import-not-at-top
  rundir = RunDir(run.workdir)
  loop.check_before_writing(run.config, rundir)
  return rundir.result_file.is_file()


def run_recipe(recipe: Recipe, workdir: str | pathlib.Path,
               seeds: tuple[int, ...] | None = None,
               say: Callable[[str], None] = print) -> dict:
  """Trains what is missing, ensembles, reports; returns {"runs": [names],
  "trained": [names], "ensembles": {dir: ensemble.json record}}."""
  from flax_sentiment.training import feeding, loop  # pylint: disable=g-import-not-at-top
  from flax_sentiment.usage import ensemble, report, report_pictures
  workdir = pathlib.Path(workdir)
  seeds = tuple(recipe.seeds if seeds is None else seeds)
  runs = member_runs(recipe, workdir, seeds)
  for run in runs:  # every config is checked before anything trains
    loading.resolve_paths(run.config)
    checks.validate_config(run.config)
  trained = []
  for i, run in enumerate(runs, 1):
    if is_finished(run):
      say(f"[{i}/{len(runs)}] {run.name}: finished in {run.workdir}, "
          f"skipped")
      continue
    say(f"[{i}/{len(runs)}] {run.name}: training in {run.workdir}")
    feeding.use_compilation_cache(run.config)
    loop.train_and_evaluate(run.config, run.workdir)
    trained.append(run.name)
  records = {}
  for out, members in ensembles(runs, recipe, workdir, seeds).items():
    record = ensemble.evaluate_ensemble(members, say)
    ensemble.write_record(out, record)
    records[str(out)] = record
    say(f"{out.name}: test accuracy {record['test_accuracy']:.4f} "
        f"(validation {record.get('validation_accuracy', float('nan')):.4f}; "
        f"weights {', '.join(f'{w:.2f}' for w in record['weights'])})")
  rows = [report.summarize(name, dirs) for name, dirs in report.group_runs(
      [r.workdir for r in runs] + [pathlib.Path(d) for d in records]).items()]
  table = report.markdown_table(rows)
  (workdir / "report.md").write_text(table + "\n")
  report_pictures.plot_curves(rows, workdir / "report.png")
  say(table)
  say(f"Wrote {workdir / 'report.md'}")
  return {"runs": [r.name for r in runs], "trained": trained,
          "ensembles": records}


def parse_seeds(text: str) -> tuple[int, ...]:
  try:
    seeds = tuple(int(part) for part in text.split(","))
  except ValueError:
    seeds = ()
  if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
    raise UserError(f"--seeds {text!r} must be distinct integers >= 0, "
                    f"e.g. --seeds 0,1,2")
  return seeds


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      prog="flax-sentiment recipe", description=__doc__.splitlines()[0])
  parser.add_argument("--config", default=DEFAULT_RECIPE,
                      help=f"a recipe's config file or name (default "
                      f"{DEFAULT_RECIPE})")
  parser.add_argument("--workdir", default="runs/best",
                      help="where the member runs, ensembles and report go")
  parser.add_argument("--seeds", help="comma-separated (default: the "
                      "recipe's)")
  parser.add_argument("--dry-run", action="store_true",
                      help="list the runs and ensembles; train nothing")
  args = parser.parse_args(argv)
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  try:
    recipe = load_recipe(args.config)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if args.dry_run:
      workdir = pathlib.Path(args.workdir)
      chosen = tuple(recipe.seeds if seeds is None else seeds)
      runs = member_runs(recipe, workdir, chosen)
      for run in runs:
        print(f"{run.name}: {'finished' if is_finished(run) else 'to train'}"
              f" ({run.workdir})")
      for out, members in ensembles(runs, recipe, workdir, chosen).items():
        print(f"{out.name}: {', '.join(m.name for m in members)}")
      return
    result = run_recipe(recipe, args.workdir, seeds)
  except UserError as e:
    sys.exit(f"error: {e}")
  except loop.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)
  print(json.dumps({"trained": result["trained"]}))


if __name__ == "__main__":
  main(sys.argv[1:])
