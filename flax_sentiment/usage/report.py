"""Tables and learning curves from run directories.

  python -m flax_sentiment.usage.report runs/rnn64 runs/lstm64 ... --out docs/results

writes `<out>.md` (a markdown table), `<out>.png` (learning curves),
for runs that recorded it, `<out>_by_length.png` (test accuracy against
review length), for runs of more than two classes `<out>_confusion.png`
(their test confusion matrices), and prints the table. Runs whose names differ only by a
`-seedN`/`_seedN` suffix form one row: mean ± std over the seeds of test
accuracy per epoch and, at the selected epoch (best on validation if the
runs had a validation split — on the run's `select_on` — else the last
epoch), of test accuracy, ROC-AUC
and F1 (macro over the classes for runs of K > 2; blank for older runs).
Reads only `metrics.jsonl` (and the `ensemble.json` of an `ensemble --out`
directory, shown as a row of its own).
"""

import argparse
import json
import pathlib
import re
import sys

import numpy as np

from flax_sentiment.tracking import progress
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.usage import report_pictures
from flax_sentiment.tracking.rundir import read_metrics

SEED_SUFFIX = re.compile(r"[-_]seed\d+$")


def group_runs(workdirs: list[pathlib.Path]) -> dict[str, list[pathlib.Path]]:
  """Run name without its seed suffix -> its workdirs (in the given order)."""
  groups: dict[str, list[pathlib.Path]] = {}
  for workdir in workdirs:
    groups.setdefault(SEED_SUFFIX.sub("", workdir.name), []).append(workdir)
  return groups


def _mean_std(values: list[float]) -> str:
  if not values:
    return ""
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def ensemble_history(directory: pathlib.Path) -> list[dict]:
  """An `ensemble --out` directory as a one-record history: its weighted
  mixture's validation and test metrics (no epochs, no training time)."""
  from flax_sentiment.usage import ensemble  # pylint: disable=g-import-not-at-top
  record = ensemble.read_ensemble(directory)
  kept = ("validation_accuracy", "test_accuracy", "test_auc", "test_f1",
          "test_macro_auc", "test_macro_f1")
  return [{"epoch": 1, "epoch_seconds": None,
           **{k: record[k] for k in kept if k in record}}]


def read_history(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl of a run, or the one record of an ensemble directory."""
  if (workdir / "ensemble.json").is_file() and not (
      workdir / "metrics.jsonl").is_file():
    return ensemble_history(workdir)
  return read_metrics(workdir)


def _recorded_json(path: pathlib.Path, key: str, default):
  """`key` of a run's JSON file (config.json, vocab.json), or `default`."""
  try:
    return json.loads(path.read_text("utf-8")).get(key, default)
  except (OSError, ValueError, AttributeError):
    return default


def summarize(name: str, workdirs: list[pathlib.Path]) -> dict:
  histories = [read_history(w) for w in workdirs]
  metric = _recorded_json(workdirs[0] / "config.json", "select_on",
                          "accuracy")
  for workdir, history in zip(workdirs, histories):
    if not history:
      raise UserError(f"{workdir / 'metrics.jsonl'} holds no epoch; pass "
                      f"workdirs that finished at least one epoch")
  epochs = max(len(h) for h in histories)
  per_epoch = [[h[e]["test_accuracy"] for h in histories if len(h) > e]
               for e in range(epochs)]
  chosen = [progress.selected(h, metric)[0] for h in histories]
  steady = [r["epoch_seconds"] for h in histories for r in (h[1:] or h)
            if r["epoch_seconds"] is not None]
  return {
      "name": name, "seeds": len(workdirs), "epochs": epochs,
      "per_epoch": per_epoch,
      "selected_test": [r["test_accuracy"] for r in chosen],
      "selected_epochs": [r["epoch"] for r in chosen],
      "by": ("validation" if "validation_accuracy" in histories[0][0]
             else "last epoch"),
      "seconds_per_epoch": float(np.mean(steady)) if steady else None,
      # The notebook's reading: the best test accuracy of any epoch (chosen
      # on test, so optimistic). Shown only for runs without validation.
      "best_on_test": [max(r["test_accuracy"] for r in h) for h in histories],
      # Recorded by newer runs only (None where a seed's run did not).
      # Binary runs record test_auc / test_f1, runs of K classes the macro.
      "selected_auc": [r.get("test_auc", r.get("test_macro_auc"))
                       for r in chosen],
      "selected_f1": [r.get("test_f1", r.get("test_macro_f1")) for r in chosen],
      "selected_by_length": [r.get("test_accuracy_by_length")
                             for r in chosen],
      # Runs of K classes: the K x K test confusion matrices, their names.
      "selected_confusion": [r.get("test_confusion") for r in chosen],
      "classes": (_recorded_json(workdirs[0] / "vocab.json", "classes", None)
                  or _recorded_json(workdirs[0] / "result.json", "classes",
                                    None)),  # text models: no vocab.json
      "histories": histories,
  }


def _recorded(values: list) -> str:
  """mean ± std of the seeds that recorded a value ("" if none did),
  saying how many did if not all."""
  present = [v for v in values if v is not None]
  if not present or len(present) == len(values):
    return _mean_std(present)
  return f"{_mean_std(present)} ({len(present)} of {len(values)} seeds)"


def markdown_table(rows: list[dict]) -> str:
  """One row per run group. The AUC and F1 columns (of the reported epoch)
  appear when some run recorded them; their cells stay blank for runs that
  did not (older runs)."""
  epochs = max(r["epochs"] for r in rows)
  optimistic = any(r["by"] == "last epoch" for r in rows)
  detailed = any(v is not None for r in rows
                 for v in r["selected_auc"] + r["selected_f1"])
  macro = "macro-" if any(len(r["classes"] or ()) > 2 for r in rows) else ""
  head = (["run", "seeds"] + [f"test acc. epoch {e + 1}" if e == 0
                              else str(e + 1) for e in range(epochs)]
          + ["reported test acc."]
          + ([f"reported test {macro}AUC", f"reported test {macro}F1"]
             if detailed else [])
          + ["epoch chosen by"]
          + (["best epoch on test (notebook's optimistic reading)"]
             if optimistic else []) + ["s/epoch"])
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for r in rows:
    cells = [_mean_std(v) for v in r["per_epoch"]]
    cells += [""] * (epochs - len(cells))
    chosen = ", ".join(str(e) for e in r["selected_epochs"])
    lines.append("| " + " | ".join(
        [r["name"], str(r["seeds"])] + cells
        + [_mean_std(r["selected_test"])]
        + ([_recorded(r["selected_auc"]), _recorded(r["selected_f1"])]
           if detailed else [])
        + [f"{r['by']} ({chosen})"]
        + ([_mean_std(r["best_on_test"]) if r["by"] == "last epoch" else "—"]
           if optimistic else [])
        + [f"{r['seconds_per_epoch']:.1f}" if r["seconds_per_epoch"]
           is not None else "—"]) + " |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="trained workdirs, or "
                      "directories of flax-sentiment ensemble --out (a row "
                      "each)")
  parser.add_argument("--out", help="write OUT.md and OUT.png")
  args = parser.parse_args(argv)
  workdirs = [pathlib.Path(w) for w in args.workdirs]
  missing = [str(w) for w in workdirs if not (w / "metrics.jsonl").is_file()
             and not (w / "ensemble.json").is_file()]
  if missing:
    sys.exit(f"error: no metrics.jsonl in {', '.join(missing)}; pass "
             f"workdirs that finished at least one epoch (or ensemble --out "
             f"directories)")
  try:
    rows = [summarize(name, dirs)
            for name, dirs in group_runs(workdirs).items()]
  except UserError as e:  # a damaged metrics.jsonl
    sys.exit(f"error: {e}")
  table = markdown_table(rows)
  print(table)
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    report_pictures.plot_curves(rows, out.with_suffix(".png"))
    written = [out.with_suffix(".md"), out.with_suffix(".png")]
    by_length = out.with_name(f"{out.name}_by_length.png")
    if report_pictures.plot_by_length(rows, by_length):
      written.append(by_length)
    confusion = out.with_name(f"{out.name}_confusion.png")
    if report_pictures.plot_confusion(rows, confusion):
      written.append(confusion)
    print(f"wrote {', '.join(str(w) for w in written)}")


if __name__ == "__main__":
  main(sys.argv[1:])
