"""Beyond the notebook, on a 2-core CPU in about 30 minutes: a bidirectional
LSTM over word2vec-initialized embeddings, pooled over time, trained with
adversarial perturbations of its embeddings.

Recipe: vocabulary of 30,000 words from train + unlabeled text; embeddings
started from word2vec trained on train (minus validation) + the 50,000
unlabeled reviews; reviews cut to their last 400 tokens, padded at the end,
masked, in 8 length buckets; BiLSTM(128 per direction) -> [last, max, mean]
-> dropout 0.5 -> Dense(1); word dropout 0.1; adversarial training on the
embeddings (Miyato et al. 2017; perturbations of norm 2.5 per review, about
1% of a review's embeddings: it doubles the step cost); AdamW (decay 1e-4),
2e-3 peak with warmup and cosine decay, gradients clipped to 1.0; 2,500
train reviews held out for validation; the epoch is chosen on validation.
Results: docs/results/beyond_notebook.md.

  python run.py --config configs/best_cpu.py
"""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.cell = "lstm"
  config.num_words = 30_000
  config.vocabulary_splits = "train+unsupervised"
  config.pretrained_embeddings = "word2vec"
  config.seq_len = 400
  config.padding = "post"
  config.mask_padding = True
  config.length_buckets = 8
  config.bidirectional = True
  config.pooling = "last+max+mean"
  config.embed_dropout = 0.1
  config.dropout = 0.5
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.warmup_steps = 200
  config.weight_decay = 1e-4
  config.clip_grad_norm = 1.0
  config.num_epochs = 4
  config.validation_examples = 2_500
  config.early_stopping_patience = 2
  config.adversarial_epsilon = 2.5
  return config
