"""Paragraph vectors: a logistic regression on PV-DBOW review vectors
(gensim Doc2Vec trained on the train part + the 50,000 unlabeled reviews;
flax_sentiment/paragraph_vectors.py), on CPU in a few minutes. Needs
scikit-learn (pip install 'flax-sentiment[ngrams]').

Same validation split as best_cpu (2,500 train reviews, validation_seed 0),
so it ensembles with the recurrent and n-gram runs on shared validation
reviews (flax-sentiment ensemble runs/best_cpu runs/ngrams runs/pv).

  python run.py --config configs/paragraph_vectors.py --workdir runs/pv
"""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.model = "paragraph_vectors"
  config.vocabulary_splits = "train+unsupervised"
  config.pv_dim = 100
  config.pv_epochs = 10
  config.pv_c_values = "0.1,1"
  config.validation_examples = 2_500
  return config
