"""The best recipe here, every choice made on validation: per seed a
bidirectional LSTM (configs/best_cpu.py), plus one n-gram model
(configs/ngrams.py), mixed with weights chosen on the shared validation
split (2,500 train reviews, validation_seed 0). Results:
docs/results/beyond_notebook.md.

  flax-sentiment recipe --config best --workdir runs/best

trains what is not yet finished (3 BiLSTM seeds, ~15-30 CPU-minutes each on
2 cores; the n-gram model, ~1 minute), then writes each seed's ensemble, the
ensemble of all, and runs/best/report.md. `python run.py --config
configs/best.py` trains the BiLSTM member alone.
"""

from flax_sentiment import recipe
from flax_sentiment.configs import best_cpu, ngrams

BILSTM = "best_cpu"


def get_config():
  """The BiLSTM member."""
  return best_cpu.get_config()


def get_recipe() -> recipe.Recipe:
  return recipe.Recipe(members={BILSTM: get_config(),
                                "ngrams": ngrams.get_config()},
                       seeded=(BILSTM,), seeds=(0, 1, 2))
