"""Tables and learning curves from run directories.

  python -m flax_sentiment.report runs/rnn64 runs/lstm64 ... --out docs/results

writes `<out>.md` (a markdown table) and `<out>.png` (learning curves), and
prints the table. Runs whose names differ only by a `-seedN`/`_seedN` suffix
form one row: mean ± std over the seeds of test accuracy per epoch and at
the selected epoch (best on validation if the runs had a validation split,
else the last epoch). Reads only `metrics.jsonl` (and `config.json`).
"""

import argparse
import pathlib
import re
import sys

import numpy as np

from flax_sentiment import progress
from flax_sentiment.rundir import read_metrics

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


def summarize(name: str, workdirs: list[pathlib.Path]) -> dict:
  histories = [read_metrics(w) for w in workdirs]
  epochs = max(len(h) for h in histories)
  per_epoch = [[h[e]["test_accuracy"] for h in histories if len(h) > e]
               for e in range(epochs)]
  chosen = [progress.selected(h)[0] for h in histories]
  steady = [r for h in histories for r in (h[1:] or h)]
  return {
      "name": name, "seeds": len(workdirs), "epochs": epochs,
      "per_epoch": per_epoch,
      "selected_test": [r["test_accuracy"] for r in chosen],
      "selected_epochs": [r["epoch"] for r in chosen],
      "by": ("validation" if "validation_accuracy" in histories[0][0]
             else "last epoch"),
      "seconds_per_epoch": float(np.mean([r["epoch_seconds"]
                                          for r in steady])),
      # The notebook's reading: the best test accuracy of any epoch (chosen
      # on test, so optimistic). Shown only for runs without validation.
      "best_on_test": [max(r["test_accuracy"] for r in h) for h in histories],
      "histories": histories,
  }


def markdown_table(rows: list[dict]) -> str:
  epochs = max(r["epochs"] for r in rows)
  optimistic = any(r["by"] == "last epoch" for r in rows)
  head = (["run", "seeds"] + [f"test acc. epoch {e + 1}" if e == 0
                              else str(e + 1) for e in range(epochs)]
          + ["reported test acc.", "epoch chosen by"]
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
        + [_mean_std(r["selected_test"]), f"{r['by']} ({chosen})"]
        + ([_mean_std(r["best_on_test"]) if r["by"] == "last epoch" else "—"]
           if optimistic else [])
        + [f"{r['seconds_per_epoch']:.1f}"]) + " |")
  return "\n".join(lines)


def plot_curves(rows: list[dict], path: pathlib.Path) -> None:
  """Accuracy and loss per epoch: train dashed, validation dotted, test
  solid; one colour per run, the mean over its seeds drawn as a line and
  their spread (min to max) as a band."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(13, 5))
  for i, r in enumerate(rows):
    colour = f"C{i % 10}"
    seeds = f" ({r['seeds']} seeds)" if r["seeds"] > 1 else ""
    for split, style in (("train", "--"), ("validation", ":"), ("test", "-")):
      for ax, metric in zip(axes, ("accuracy", "loss")):
        key = f"{split}_{metric}"
        curves = [[rec[key] for rec in h] for h in r["histories"]
                  if key in h[0]]
        if not curves:
          continue
        length = min(len(c) for c in curves)
        values = np.array([c[:length] for c in curves])
        epochs = np.arange(1, length + 1)
        ax.plot(epochs, values.mean(axis=0), style, color=colour,
                label=r["name"] + seeds if split == "test" else None)
        if len(curves) > 1:
          ax.fill_between(epochs, values.min(axis=0), values.max(axis=0),
                          color=colour, alpha=0.12, linewidth=0)
  for ax, metric in zip(axes, ("accuracy", "binary cross-entropy")):
    ax.set_xlabel("epoch", fontsize=12)
    ax.set_ylabel(metric, fontsize=12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)
  # One legend for both panels, below them, clear of the curves.
  handles, labels = axes[0].get_legend_handles_labels()
  columns = min(4, max(1, len(labels)))
  legend_rows = -(-len(labels) // columns)
  fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=11,
             frameon=False)
  fig.suptitle("test solid, validation dotted, train dashed; bands: min-max "
               "over seeds", fontsize=12)
  fig.tight_layout(rect=(0, 0.06 * legend_rows + 0.02, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="run.py workdirs")
  parser.add_argument("--out", help="write OUT.md and OUT.png")
  args = parser.parse_args(argv)
  workdirs = [pathlib.Path(w) for w in args.workdirs]
  missing = [str(w) for w in workdirs if not (w / "metrics.jsonl").is_file()]
  if missing:
    sys.exit(f"error: no metrics.jsonl in {', '.join(missing)}; pass run.py "
             f"workdirs that finished at least one epoch")
  rows = [summarize(name, dirs) for name, dirs in group_runs(workdirs).items()]
  table = markdown_table(rows)
  print(table)
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    plot_curves(rows, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
  main(sys.argv[1:])
