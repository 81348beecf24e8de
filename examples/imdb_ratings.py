"""IMDB's star ratings as a review file of more than two classes (#40).

The raw IMDB reviews (`../shared/data/imdb/*.jsonl.gz`, one JSON object a
line: split, label, id, rating, url, text) carry each review's rating: 1-4
(negative) or 7-10 (positive). This writes, into OUT (default
data/imdb_ratings):

  train.jsonl, test.jsonl  {"text", "rating" (1-4, 7-10: 8 classes),
                            "stars" ("1-2", "3-4", "7-8", "9-10": 4 bins)}
  unlabeled.txt            the 50,000 unlabeled reviews, one a line

for configs/ratings.py (label_field rating) and configs/ratings4.py
(label_field stars). Test text stays in test.jsonl: training reads it only
to test.

  python examples/imdb_ratings.py [--source ../shared/data/imdb] [--out DIR]
"""

import argparse
import gzip
import json
import pathlib

BINS = {1: "1-2", 2: "1-2", 3: "3-4", 4: "3-4", 7: "7-8", 8: "7-8",
        9: "9-10", 10: "9-10"}


def write_split(source: pathlib.Path, out: pathlib.Path) -> int:
  """source .jsonl.gz -> out .jsonl with text, rating, stars; the count."""
  count = 0
  with gzip.open(source, "rt", encoding="utf-8") as f, \
      open(out, "w", encoding="utf-8") as g:
    for line in f:
      review = json.loads(line)
      g.write(json.dumps({"text": review["text"], "rating": review["rating"],
                          "stars": BINS[review["rating"]]}) + "\n")
      count += 1
  return count


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--source", default="../shared/data/imdb")
  parser.add_argument("--out", default="data/imdb_ratings")
  args = parser.parse_args()
  source, out = pathlib.Path(args.source), pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  for split in ("train", "test"):
    n = write_split(source / f"imdb_{split}.jsonl.gz", out / f"{split}.jsonl")
    print(f"{out / split}.jsonl: {n:,} reviews")
  n = 0
  with open(out / "unlabeled.txt", "w", encoding="utf-8") as g:
    for part in sorted(source.glob("imdb_unsup_*.jsonl.gz")):
      with gzip.open(part, "rt", encoding="utf-8") as f:
        for line in f:
          g.write(" ".join(json.loads(line)["text"].split()) + "\n")
          n += 1
  print(f"{out / 'unlabeled.txt'}: {n:,} reviews")


if __name__ == "__main__":
  main()
