"""flax-sentiment: recurrent sentiment classifiers on IMDB in JAX/Flax.

Modules (see docs/design.md for how a run flows through them): `data` (IMDB
via tfds, tokenizer, vocabulary, padding, validation split, cache),
`pretrain` (word2vec), `batching` (epoch plans), `models` (the classifier),
`recurrence` (fast RNN/LSTM/GRU loops), `train` (pure steps), `loop` (the
epoch loop), `monitor` (progress, TensorBoard), `workdir` (run files),
`checkpoints` (orbax), `parallel` (devices and processes), `predict` (your
own text), `report` (tables and plots), `config_checks` and `errors`.
"""

__version__ = "0.2.0"
