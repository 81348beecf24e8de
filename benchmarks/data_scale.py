"""The data stage at scale: reading, tokenizing, counting and encoding a
reviews CSV of 50,000 / 200,000 / 1,000,000 reviews, timed with its peak
memory, for this checkout and (beside it, in the same run) an older one.

  python benchmarks/data_scale.py --sizes 50000,200000,1000000 \
      --old /path/to/older/checkout --old-sizes 50000,200000 \
      --out benchmarks/results/data-scale.jsonl

Each size's CSV is made once (in --work) from IMDB's 100,000 reviews
(../shared/data/imdb/*.jsonl.gz), repeated as needed; every review gets one
word of its own ("r123456"), so the token table grows with the data as it
does with real reviews. Each measurement runs in a fresh subprocess:
`datasets.load_imdb` of `--config.dataset=CSV` (LSTM defaults: num_words
10,000, seq_len 64), first with an empty cache (the whole data stage:
reading, tokenizing, the vocabulary, encoding, padding), then again (from
the cache). Peak memory: the subprocess's peak resident set (ru_maxrss),
and its peak anonymous memory (RssAnon, sampled every 10 ms: what it needs
beyond the page cache of the files it reads and maps). One JSON line per
measurement.
"""

import argparse
import csv
import gzip
import itertools
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
IMDB = REPO.parent / "shared" / "data" / "imdb"

# Runs in the subprocess: the data stage of one checkout, measured.
PROBE = r"""
import json, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
peak = [0]
def sample():
  while True:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("RssAnon:"):
          peak[0] = max(peak[0], int(line.split()[1]) * 1024)
    time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
from flax_sentiment.configs import default
from flax_sentiment.data import datasets
config = default.get_config()
config.dataset = sys.argv[2]
config.cache_dir = sys.argv[3]
for name, value in json.loads(sys.argv[4]).items():
  config[name] = value
start = time.perf_counter()
imdb = datasets.load_imdb(config)
seconds = time.perf_counter() - start
time.sleep(0.05)
import flax_sentiment
print(json.dumps({"seconds": seconds, "package": flax_sentiment.__file__,
                  "peak_rss_bytes": resource.getrusage(
                      resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_anon_bytes": peak[0],
                  "train": len(imdb.train), "test": len(imdb.test),
                  "vocabulary": len(imdb.vocabulary)}))
"""


def imdb_texts() -> list[tuple[str, int]]:
  """IMDB's train, test and unlabeled reviews (label: 1 for rating > 5)."""
  out = []
  for path in sorted(IMDB.glob("imdb_*.jsonl.gz")):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        rating = record.get("rating") or 0
        out.append((record["text"], int(rating > 5) if rating else
                    len(out) % 2))
  return out


def make_csv(path: pathlib.Path, size: int, texts) -> None:
  if path.exists():
    return
  partial = path.with_suffix(".partial")
  with open(partial, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    for i, (text, label) in enumerate(itertools.islice(
        itertools.cycle(texts), size)):
      writer.writerow([f"{text} r{i}", label])
  partial.rename(path)


def measure(checkout: pathlib.Path, data: pathlib.Path, fields: dict,
            python: str) -> list[dict]:
  """(cold, warm) measurements of one checkout on one file."""
  cache = pathlib.Path(tempfile.mkdtemp(prefix="data_scale_cache_"))
  try:
    out = []
    for cache_state in ("cold", "warm"):
      proc = subprocess.run(
          [python, "-c", PROBE, str(checkout), str(data), str(cache),
           json.dumps(fields)], capture_output=True, text=True,
          env=dict(os.environ, JAX_PLATFORMS="cpu"), check=False)
      if proc.returncode:
        raise RuntimeError(f"{checkout} on {data}: {proc.stderr[-2000:]}")
      out.append({"cache": cache_state,
                  **json.loads(proc.stdout.strip().splitlines()[-1])})
    return out
  finally:
    shutil.rmtree(cache, ignore_errors=True)


def git_describe(checkout: pathlib.Path) -> str:
  return subprocess.run(["git", "-C", str(checkout), "log", "-1",
                         "--format=%h %s"], capture_output=True, text=True
                        ).stdout.strip()[:80]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", default="50000,200000,1000000")
  parser.add_argument("--old", help="an older checkout to measure beside")
  parser.add_argument("--old-sizes", default="50000,200000")
  parser.add_argument("--tokenizers", default="english,words",
                      help="this checkout's --config.tokenizer values")
  parser.add_argument("--work", default="/tmp/data_scale")
  parser.add_argument("--python", default=sys.executable)
  parser.add_argument("--repeats", type=int, default=1,
                      help="times the whole interleaved sequence is run")
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  work = pathlib.Path(args.work)
  work.mkdir(parents=True, exist_ok=True)
  texts = None
  runs = []
  old_sizes = {int(s) for s in args.old_sizes.split(",")} if args.old else set()
  for size in map(int, args.sizes.split(",")):
    data = work / f"reviews_{size}.csv"
    if not data.exists():
      texts = texts or imdb_texts()
      make_csv(data, size, texts)
    # Interleaved: the older checkout right beside this one, per size.
    if size in old_sizes:
      runs.append((size, data, pathlib.Path(args.old), {}, "old"))
    for kind in args.tokenizers.split(","):
      runs.append((size, data, REPO, {"tokenizer": kind}, "this"))
  with open(args.out, "a", encoding="utf-8") as out:
    for size, data, checkout, fields, which in runs * args.repeats:
      for record in measure(checkout, data, fields, args.python):
        record.update(reviews=size, checkout=which,
                      commit=git_describe(checkout), fields=fields,
                      machine=platform.processor() or platform.machine(),
                      cpus=len(os.sched_getaffinity(0)),
                      python=platform.python_version())
        print(json.dumps(record), flush=True)
        out.write(json.dumps(record) + "\n")
        out.flush()


if __name__ == "__main__":
  main()
