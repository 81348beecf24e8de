"""The pictures of `flax_sentiment.usage.report`, from its rows
(`report.summarize`): learning curves (small multiples, a panel per run
group), test accuracy by review length, and the test confusion matrices
of runs of more than two classes."""

import pathlib

import numpy as np


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
