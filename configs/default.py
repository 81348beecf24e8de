"""Defaults: the Keras notebook's LSTM experiment at seq_len 64.

Every field can be overridden on the command line, e.g.
`python run.py --config configs/lstm.py --config.seq_len=512`.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Model.
  config.cell = "lstm"            # rnn (SimpleRNN, tanh) | lstm | gru
  config.num_words = 10_000       # vocabulary incl. 0 = padding, 1 = unknown
  config.embed_dim = 256
  config.hidden_dim = 128
  config.dtype = "float32"        # float32 | bfloat16 (compute; params f32)
  # Beyond the notebook (off by default).
  config.bidirectional = False    # needs mask_padding
  config.num_layers = 1
  config.pooling = "last"         # last | max | mean, or e.g. last+max+mean
  config.embed_dropout = 0.0      # drop whole words (embedding rows)
  config.dropout = 0.0            # between layers and before the dense layer
  config.pretrained_embeddings = "none"  # none | word2vec (train+unlabeled)
  # Data.
  config.seq_len = 64
  config.padding = "pre"          # Keras pad_sequences: pre | post
  config.truncating = "pre"
  config.mask_padding = False     # True: padding leaves the RNN state untouched
  config.length_buckets = 0       # >0: batch reviews of similar length
  config.vocabulary_splits = "train"  # train | train+unsupervised
  config.max_train_examples = placeholder(int)  # None = all 25,000
  config.max_test_examples = placeholder(int)
  config.data_dir = placeholder(str)            # None = TFDS_DATA_DIR / tfds
  config.download = True          # let tfds download if the data is missing
  config.cache_dir = placeholder(str)           # None = ~/.cache/flax_sentiment
  # Training.
  config.batch_size = 32
  config.num_epochs = 5
  config.learning_rate = 1e-3
  config.lr_schedule = "constant"  # constant | cosine | linear (to 0)
  config.warmup_steps = 0
  config.weight_decay = 0.0       # >0: AdamW
  config.clip_grad_norm = 0.0     # >0: clip gradients by global norm
  config.adversarial_epsilon = 0.0  # >0: adversarial training, this radius
  config.seed = 0
  config.steps_per_call = 32      # train steps per compiled call (lax.scan)
  config.eval_batch_size = 500     # rounded up to a multiple of the devices
  config.validation_examples = 0   # >0: hold out this many train reviews
  config.validation_seed = 0      # which ones (fixed across seeds)
  config.early_stopping_patience = 0  # >0: stop after N epochs w/o val gain
  # Speed knobs (results do not depend on them beyond float rounding).
  config.implementation = "auto"  # pallas on one Hopper GPU, else hoisted | hoisted | stock | pallas
  config.unroll = 0                # 0: by backend (GPU 8, else 1)
  config.project_distinct_words = True  # project only each batch's words
  # What a run shows.
  config.progress = True          # bar on a terminal; False: plain lines only
  config.progress_every_seconds = 30.0  # plain progress lines (no terminal)
  # Checkpoints.
  config.checkpoint_every_steps = 200
  config.keep_checkpoints = 2
  # Many processes (None = single process or auto-detected Cloud TPU).
  config.coordinator_address = placeholder(str)
  config.num_processes = placeholder(int)
  config.process_id = placeholder(int)
  return config
