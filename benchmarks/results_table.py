"""Markdown table of per-epoch test accuracy from run workdirs.

  python benchmarks/results_table.py runs/rnn64 runs/lstm64 ...
"""

import json
import pathlib
import sys


def main(workdirs: list[str]) -> None:
  print("| run | test acc. epoch 1 | 2 | 3 | 4 | 5 | best (epoch) | s/epoch "
        "(steady) | train ex/s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for workdir in workdirs:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    records = [json.loads(l) for l in path.read_text().splitlines()]
    accs = [r["test_accuracy"] for r in records]
    best = max(range(len(accs)), key=accs.__getitem__)
    steady = records[1:] or records
    seconds = sum(r["epoch_seconds"] for r in steady) / len(steady)
    speed = sum(r["train_examples_per_second"] for r in steady) / len(steady)
    cells = [f"{a:.4f}" for a in accs] + [""] * (5 - len(accs))
    print(f"| {pathlib.Path(workdir).name} | {' | '.join(cells)} | "
          f"{accs[best]:.4f} ({best + 1}) | {seconds:.1f} | {speed:.0f} |")


if __name__ == "__main__":
  main(sys.argv[1:])
