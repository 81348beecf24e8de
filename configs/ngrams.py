"""An n-gram model: logistic regression on binary word 1-3-grams weighted
by naive-Bayes log-count ratios (flax_sentiment/ngrams.py), on CPU in a few
minutes. Needs scikit-learn (pip install 'flax-sentiment[ngrams]').

Same validation split as best_cpu (2,500 train reviews, validation_seed 0),
so the two ensemble on shared validation reviews
(flax-sentiment ensemble runs/best_cpu runs/ngrams).

  python run.py --config configs/ngrams.py --workdir runs/ngrams
"""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.model = "ngrams"
  config.ngram_max_n = 3
  config.ngram_min_count = 2
  config.ngram_c_values = "0.1,0.3,1,3,10"
  config.validation_examples = 2_500
  return config
