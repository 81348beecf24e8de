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
and F1 (the last two for runs that recorded them; blank for older runs).
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
  kept = ("validation_accuracy", "test_accuracy", "test_auc", "test_f1")
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
      "selected_auc": [r.get("test_auc") for r in chosen],
      "selected_f1": [r.get("test_f1") for r in chosen],
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
  head = (["run", "seeds"] + [f"test acc. epoch {e + 1}" if e == 0
                              else str(e + 1) for e in range(epochs)]
          + ["reported test acc."]
          + (["reported test AUC", "reported test F1"] if detailed else [])
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


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _seeds(row: dict) -> str:
  return f" ({row['seeds']} seeds)" if row["seeds"] > 1 else ""


# How each split's accuracy is drawn in the learning curves.
SPLIT_STYLES = (("train", "--", "C0"), ("validation", ":", "C2"),
                ("test", "-", "C3"))


def _split_curves(row: dict, split: str) -> np.ndarray | None:
  """[seeds, epochs] accuracy of `split` in a run group's histories (cut to
  the shortest), None if its runs did not record it."""
  key = f"{split}_accuracy"
  curves = [[rec[key] for rec in h] for h in row["histories"] if key in h[0]]
  if not curves:
    return None
  length = min(len(c) for c in curves)
  return np.array([c[:length] for c in curves])


def curve_labels(rows: list[dict]) -> tuple[list[str], str]:
  """What `plot_curves` draws: the splits some run recorded (its legend)
  and its caption, which mentions seeds only if some group has several."""
  splits = [s for s, _, _ in SPLIT_STYLES
            if any(_split_curves(r, s) is not None for r in rows)]
  caption = "Accuracy per epoch"
  if any(r["seeds"] > 1 for r in rows):
    caption += ": lines mean over seeds, bands min-max over seeds"
  return splits, caption


def plot_curves(rows: list[dict], path: pathlib.Path,
                columns: int = 4) -> None:
  """Accuracy per epoch, small multiples: one panel per run group (up to
  `columns` a row), a shared accuracy axis, in each panel the splits its
  runs recorded (train dashed, validation dotted, test solid; the legend
  lists those drawn), the mean over seeds as a line and, with several
  seeds, their spread (min to max) as a band (`curve_labels`)."""
  plt = _pyplot()
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  columns = max(1, min(columns, len(rows)))
  panel_rows = -(-len(rows) // columns)
  # At least as wide as the caption and legend, for one or two panels.
  fig, axes = plt.subplots(panel_rows, columns, sharey=True, squeeze=False,
                           figsize=(max(2.5 * columns + 0.6, 5.8),
                                    2.3 * panel_rows + 0.9))
  handles = {}
  for ax, r in zip(axes.flat, rows):
    for split, style, colour in SPLIT_STYLES:
      values = _split_curves(r, split)
      if values is None:
        continue
      epochs = np.arange(1, values.shape[1] + 1)
      handles[split] = ax.plot(epochs, values.mean(axis=0), style,
                               color=colour, linewidth=1.8)[0]
      if len(values) > 1:
        ax.fill_between(epochs, values.min(axis=0), values.max(axis=0),
                        color=colour, alpha=0.15, linewidth=0)
    ax.set_title(r["name"] + _seeds(r), fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=9)
    ax.grid(alpha=0.3)
  for ax in axes.flat[len(rows):]:
    ax.set_visible(False)
  for ax in axes[:, 0]:
    ax.set_ylabel("accuracy", fontsize=10)
  for ax in axes.flat[max(0, len(rows) - columns):len(rows)]:
    ax.set_xlabel("epoch", fontsize=10)
  splits, caption = curve_labels(rows)
  fig.suptitle(caption, fontsize=11)
  fig.legend([handles[s] for s in splits], splits, loc="lower center",
             ncol=len(splits), fontsize=10, frameon=False)
  height = fig.get_size_inches()[1]
  fig.tight_layout(rect=(0, 0.4 / height, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def length_bucket_labels(edges: list[int]) -> list[str]:
  """Bucket lower bounds -> labels in words: "0-63", ..., "1024+"."""
  return ([f"{low}-{high - 1}" for low, high in zip(edges, edges[1:])]
          + [f"{edges[-1]}+"])


def _mean_by_length(recorded: list[dict]) -> np.ndarray:
  """Per bucket, the mean accuracy over the seeds with reviews in it (NaN
  where none had any)."""
  accuracy = np.array([[np.nan if a is None else a for a in b["accuracy"]]
                       for b in recorded], np.float64)
  present = np.isfinite(accuracy)
  return np.where(present.any(axis=0), np.nansum(accuracy, axis=0)
                  / np.maximum(present.sum(axis=0), 1), np.nan)


def plot_by_length(rows: list[dict], path: pathlib.Path) -> bool:
  """Test accuracy at the reported epoch against review length (words
  before truncation, in `test_accuracy_by_length`'s buckets): one line per
  run group, the mean over its seeds. Runs that did not record it (or used
  other buckets than the first that did) are left out; returns False, and
  writes nothing, if no run recorded it."""
  lines, edges = [], None
  for r in rows:
    recorded = [b for b in r["selected_by_length"] if b is not None]
    edges = edges or (recorded[0]["edges"] if recorded else None)
    recorded = [b for b in recorded if b["edges"] == edges]
    if recorded:
      lines.append((r, recorded))
  if not lines:
    return False
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(9.0, 4.2))
  for i, (r, recorded) in enumerate(lines):
    seeds = f" ({len(recorded)} seeds)" if len(recorded) > 1 else ""
    ax.plot(range(len(edges)), _mean_by_length(recorded), "-o",
            color=f"C{i % 10}", label=r["name"] + seeds, linewidth=1.8,
            markersize=4)
  labels = length_bucket_labels(edges)
  counts = [b["count"] for _, recorded in lines for b in recorded]
  xlabel = "review length in words, before truncation"
  if all(c == counts[0] for c in counts):  # one test set: say its sizes
    labels = [f"{label}\n{count:,}" for label, count in zip(labels,
                                                             counts[0])]
    xlabel += " (below: test reviews in each bucket)"
  ax.set_xticks(range(len(edges)), labels, fontsize=9)
  ax.set_xlabel(xlabel, fontsize=10)
  ax.set_ylabel("test accuracy", fontsize=10)
  ax.tick_params(axis="y", labelsize=9)
  ax.grid(alpha=0.3)
  several = any(len(recorded) > 1 for _, recorded in lines)
  ax.set_title("Test accuracy by review length, at the reported epoch"
               + (" (mean over seeds)" if several else ""), fontsize=11)
  ax.legend(fontsize=9, frameon=False, loc="upper left",
            bbox_to_anchor=(1.01, 1.0))  # beside the axes, clear of lines
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def confusion_of(row: dict) -> np.ndarray | None:
  """The summed test confusion matrix [K, K] (rows: the true class) of a
  row's seeds at their reported epochs; None unless they are runs of more
  than two classes (a binary run records {tp, fp, tn, fn})."""
  matrices = [m for m in row["selected_confusion"] if isinstance(m, list)]
  if not matrices or len(matrices) < len(row["selected_confusion"]):
    return None
  return np.sum([np.asarray(m, np.float64) for m in matrices], axis=0)


def plot_confusion(rows: list[dict], path: pathlib.Path) -> bool:
  """Each K-class row's test confusion matrix at the reported epoch, the
  share of each true class (a row) predicted as each class, with the
  counts; returns False, writing nothing, if no row is of K classes."""
  shown = [(r, m) for r in rows if (m := confusion_of(r)) is not None]
  if not shown:
    return False
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(shown), squeeze=False,
                           figsize=(max(5.5, 4.2 * len(shown)), 4.4))
  for ax, (row, matrix) in zip(axes[0], shown):
    names = row["classes"] or [str(k) for k in range(len(matrix))]
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(matrix.shape):
      ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center",
              color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_xlabel("predicted", fontsize=10)
    ax.set_ylabel("true class", fontsize=10)
    ax.set_title(row["name"] + _seeds(row), fontsize=10)
  fig.suptitle("Test confusion at the reported epoch\n(shade: the share "
               "of each true class)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


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
    plot_curves(rows, out.with_suffix(".png"))
    written = [out.with_suffix(".md"), out.with_suffix(".png")]
    by_length = out.with_name(f"{out.name}_by_length.png")
    if plot_by_length(rows, by_length):
      written.append(by_length)
    confusion = out.with_name(f"{out.name}_confusion.png")
    if plot_confusion(rows, confusion):
      written.append(confusion)
    print(f"wrote {', '.join(str(w) for w in written)}")


if __name__ == "__main__":
  main(sys.argv[1:])
