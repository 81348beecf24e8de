"""Johnson & Zhang's region CNN with region (tv-) embeddings, on a CPU.

Region embeddings (100 ReLU units over the bag of a 5-word region, trained
to predict the words of the neighbouring regions) are learned first from
the train reviews kept for training plus the 50,000 unlabeled reviews
(never validation or test text; cached, shared by every seed). The CNN then
reads each 5-word region as a bag through 1,000 ReLU units, with the
region's embedding as a fixed side input, max-pools over the review,
applies dropout 0.5 and Dense(1). Vocabulary of 30,000 words from train +
unlabeled text; reviews cut to their last 800 tokens, in 8 length buckets;
Adam with warmup and cosine decay; 2,500 train reviews held out for
validation; the epoch is chosen on validation.

  python run.py --config configs/region_cnn.py
"""

from flax_sentiment.configs import default


def get_config():
  config = default.get_config()
  config.model = "region_cnn"
  config.num_words = 30_000
  config.vocabulary_splits = "train+unsupervised"
  config.embed_dim = 1000
  config.region_size = 5
  config.region_embedding_dim = 100
  config.seq_len = 800
  config.padding = "post"
  config.mask_padding = True
  config.length_buckets = 8
  config.dropout = 0.5
  config.batch_size = 32
  config.learning_rate = 1e-3
  config.lr_schedule = "cosine"
  config.warmup_steps = 200
  config.num_epochs = 6
  config.validation_examples = 2_500
  config.early_stopping_patience = 2
  return config
