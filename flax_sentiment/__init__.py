"""flax-sentiment: recurrent sentiment classifiers on IMDB in JAX/Flax.

Modules: `data` (IMDB via tfds, tokenizer, vocabulary, padding, cache),
`models` (the classifier), `recurrence` (fast RNN/LSTM/GRU scans), `batching`
(epoch plans), `train` (steps and the training loop), `checkpoints` (orbax),
`parallel` (devices and processes), `predict` (your own text),
`config_checks` and `errors`.
"""

__version__ = "0.1.0"
