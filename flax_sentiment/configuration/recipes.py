"""What a recipe file's `get_recipe()` returns (configs/best.py): plain
data, so recipe files import nothing but the configuration layer;
`flax_sentiment.recipe` trains and ensembles it."""

import dataclasses

import ml_collections


@dataclasses.dataclass
class Recipe:
  """members: name -> config; seeded: the names trained once per seed (the
  rest once); seeds: the seeds of the seeded members."""
  members: dict[str, ml_collections.ConfigDict]
  seeded: tuple[str, ...]
  seeds: tuple[int, ...] = (0, 1, 2)
