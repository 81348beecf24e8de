"""Review files of K classes written by the tests: each class has words of
its own (and every review some shared ones), so a model can tell them apart
and a wrong label order shows."""

import csv
import json
import pathlib

import numpy as np

# Words of each class, by the class's position in the names given.
CLASS_WORDS = [["awful", "dreadful", "boring"], ["okay", "average", "fine"],
               ["great", "wonderful", "moving"], ["superb", "flawless"],
               ["masterpiece", "sublime"]]
SHARED = ["the", "film", "plot", "actors", "story", "scene", "music"]


def reviews(names: list[str], num: int, seed: int) -> list[tuple[str, str]]:
  """(text, label name) rows: review i is of class i % len(names)."""
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(num):
    c = i % len(names)
    words = list(rng.choice(SHARED, 6)) + list(rng.choice(CLASS_WORDS[c], 2))
    rng.shuffle(words)
    rows.append((" ".join(words), names[c]))
  return rows


def write_csv(path: pathlib.Path, names: list[str], num: int, seed: int = 0
              ) -> pathlib.Path:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    writer.writerows(reviews(names, num, seed))
  return path


def write_jsonl(path: pathlib.Path, names: list, num: int, seed: int = 0,
                label_field: str = "label") -> pathlib.Path:
  with open(path, "w", encoding="utf-8") as f:
    for text, name in reviews(names, num, seed):
      f.write(json.dumps({"text": text, label_field: name}) + "\n")
  return path


def class_of(text: bytes | str) -> int:
  """The class whose words a review holds."""
  words = set((text.decode() if isinstance(text, bytes) else text).split())
  return next(c for c, own in enumerate(CLASS_WORDS) if words & set(own))
