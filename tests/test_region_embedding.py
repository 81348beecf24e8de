"""The region CNN and its region (tv-) embeddings (#41): the network and the
pretraining loss against hand-written references, windows that never cross
reviews, pretraining text without validation or test reviews, the cache,
embeddings held fixed while the classifier trains, and the config checks.
The run's life cycle: tests/test_region_cnn_lifecycle.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.data import datasets
from flax_sentiment.data import imdb as imdb_source
from flax_sentiment.model import classifier, region_cnn
from flax_sentiment.runtime.errors import ConfigError
from flax_sentiment.training import checks, region_embedding, train_steps
from tests.conftest import tiny_config


def relu(x):
  return np.maximum(x, 0.0)


def test_region_sums_add_the_rows_of_the_centred_region():
  rows = np.random.default_rng(0).normal(size=(7, 2, 3)).astype(np.float32)
  for size in (1, 4, 5):
    before = (size - 1) // 2
    want = np.zeros_like(rows)
    for t in range(7):
      for s in range(t - before, t - before + size):
        if 0 <= s < 7:
          want[t] += rows[s]
    np.testing.assert_allclose(region_cnn.region_sums(jnp.asarray(rows), size),
                               want, atol=1e-6)


def reference_logits(params, tokens, size):
  """The region CNN by loops over reviews and positions (numpy)."""
  emb = np.asarray(params["embedding"]["embedding"])
  fixed = params[region_cnn.FIXED]
  table, bias = np.asarray(fixed["table"]), np.asarray(fixed["bias"])
  side = np.asarray(params["side"]["kernel"])
  out = []
  for review in np.asarray(tokens):
    units = []
    for t, word in enumerate(review):
      if word == 0:
        continue
      region = [review[s] for s in range(t - (size - 1) // 2,
                                         t - (size - 1) // 2 + size)
                if 0 <= s < len(review) and review[s] != 0]
      tv = relu(sum(table[w] for w in region) + bias)
      units.append(relu(sum(emb[w] for w in region) + tv @ side
                        + np.asarray(params["region_bias"])))
    pooled = np.max(units, axis=0)
    dense = params["dense"]
    out.append(pooled @ np.asarray(dense["kernel"])[:, 0]
               + np.asarray(dense["bias"])[0])
  return np.asarray(out)


def test_region_cnn_equals_a_hand_written_reference():
  model = region_cnn.RegionCNN(num_words=20, embed_dim=6, region_size=3,
                               region_embedding_dim=4)
  tokens = jnp.asarray([[0, 0, 5, 7, 9, 3], [4, 4, 8, 2, 11, 0],
                        [0, 0, 0, 0, 0, 13]], jnp.int32)
  params = model.init(jax.random.key(0), tokens)["params"]
  # Random non-zero biases and fixed table, so that every term shows.
  rng = np.random.default_rng(1)
  params = jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  got = model.apply({"params": params}, tokens)
  np.testing.assert_allclose(got, reference_logits(params, tokens, 3),
                             rtol=1e-5, atol=1e-5)


def reference_bucket(ngram: tuple[int, ...]) -> int:
  """The hashed row of an n-gram, by Python integers: start from n; for
  each word, xor in word * its multiplier (the four taken in turn), then
  xor in the value shifted right by 15 bits (all mod 2^32)."""
  multipliers = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)
  mixed = len(ngram)
  for k, word in enumerate(ngram):
    mixed ^= (word * multipliers[k % 4]) % 2 ** 32
    mixed ^= mixed >> 15
  return mixed % region_cnn.NGRAM_BUCKETS


def test_ngram_region_embedding_equals_a_hand_written_reference():
  """With ngrams=3 a region's embedding adds the rows of each bigram and
  trigram lying wholly inside the region (none with padding or past the
  review's end) to its words' rows."""
  size, width = 5, 3
  module = region_cnn.RegionEmbedding(30, width, size, ngrams=3)
  tokens = np.array([[0, 0, 5, 7, 9, 3, 21, 4], [4, 4, 8, 2, 11, 6, 0, 0]],
                    np.int32)
  params = module.init(jax.random.key(0), jnp.asarray(tokens.T))["params"]
  rng = np.random.default_rng(2)
  params = jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  words, grams = np.asarray(params["table"]), np.asarray(params["ngram_table"])
  want = np.zeros((8, 2, width), np.float32)
  for b, review in enumerate(tokens):
    for t in range(8):
      span = [s for s in range(t - 2, t + 3) if 0 <= s < 8]
      total = np.asarray(params["bias"]).copy()
      for n in (1, 2, 3):
        for start in span:
          gram = tuple(int(review[s]) for s in range(start, start + n)
                       if s in span)
          if len(gram) == n and 0 not in gram:
            total += (words[gram[0]] if n == 1
                      else grams[reference_bucket(gram)])
      want[t, b] = relu(total)
  got = module.apply({"params": params}, jnp.asarray(tokens.T))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_ngram_buckets_tell_order_and_length_apart():
  """Reordered bigrams, and a trigram beside its own bigram, take other
  rows; every row is in the table."""
  ids = jnp.asarray([[3, 9, 3, 9, 4]], jnp.int32).T  # [seq_len, batch]
  two, real2 = region_cnn.ngram_buckets(ids, 2)
  three, real3 = region_cnn.ngram_buckets(ids, 3)
  two, three = np.asarray(two)[:, 0], np.asarray(three)[:, 0]
  assert two[0] == two[2] != two[1]  # (3, 9) twice, (9, 3) once
  assert three[0] != two[0]
  assert list(np.asarray(real2)[:, 0]) == [True] * 4 + [False]
  assert list(np.asarray(real3)[:, 0]) == [True] * 3 + [False] * 2
  assert np.all((two >= 0) & (two < region_cnn.NGRAM_BUCKETS))
  # Every word counts, the fifth too (past the four multipliers).
  five = [np.asarray(region_cnn.ngram_buckets(
      jnp.asarray([[3, 9, 4, 7, last]], jnp.int32).T, 5)[0])[0, 0]
          for last in (5, 6)]
  assert five[0] != five[1]
  assert five[0] == reference_bucket((3, 9, 4, 7, 5))


def test_region_cnn_has_k_logits_and_no_fixed_part_without_embeddings():
  model = region_cnn.RegionCNN(num_words=20, embed_dim=6, num_classes=4)
  tokens = jnp.ones((2, 5), jnp.int32)
  params = model.init(jax.random.key(0), tokens)["params"]
  assert region_cnn.FIXED not in params and "side" not in params
  assert model.apply({"params": params}, tokens).shape == (2, 4)


def test_windows_never_cross_into_another_review():
  reviews = [np.array([2, 3, 4], np.int32), np.array([5], np.int32),
             np.array([6, 7, 8, 9, 10, 11, 12], np.int32)]
  flat, centres = region_embedding.corpus(reviews, region_size=3)
  assert len(centres) == 11 and sorted(flat[centres]) == list(range(2, 13))
  regions, neighbours = region_embedding.windows(jnp.asarray(flat),
                                                 jnp.asarray(centres), 3)
  regions, neighbours = np.asarray(regions), np.asarray(neighbours)
  owner = {w: i for i, r in enumerate(reviews) for w in r}
  for centre, region, near in zip(flat[centres], regions, neighbours):
    seen = set(region[region > 0]) | set(near[near > 0])
    assert {owner[w] for w in seen} == {owner[centre]}
  # Word 9 (review 3): region 8 9 10; neighbours 5 6 7 | 11 12 13 -> 6 7 | 11 12.
  row = list(flat[centres]).index(9)
  assert list(regions[row]) == [8, 9, 10]
  assert list(neighbours[row]) == [0, 6, 7, 11, 12, 0]


def test_region_loss_equals_a_hand_written_reference():
  rng = np.random.default_rng(0)
  num_words, width, size = 12, 3, 3
  params = {"region": {"table": rng.normal(size=(num_words, width)),
                       "bias": rng.normal(size=width)},
            "output": {"table": rng.normal(size=(num_words, width)),
                       "bias": rng.normal(size=num_words)}}
  params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params)
  regions = np.array([[0, 4, 5], [6, 7, 8]], np.int32)
  neighbours = np.array([[0, 0, 3, 9, 10, 2], [5, 4, 11, 0, 9, 9]], np.int32)
  negatives = np.array([7, 8, 11, 5], np.int32)
  first = 4  # ids 2 and 3 are "frequent": not predicted
  p = jax.tree.map(np.asarray, params)
  total, bias_grad = 0.0, np.zeros(num_words)
  for region, near in zip(regions, neighbours):
    h = relu(sum(p["region"]["table"][w] for w in region if w)
             + p["region"]["bias"])
    score = lambda w, h=h: h @ p["output"]["table"][w] + p["output"]["bias"][w]
    for w in near:
      if w >= first:
        total += (score(w) - 1.0) ** 2
        bias_grad[w] += 2 * (score(w) - 1.0) / 2
    scale = region_embedding.ZERO_WEIGHT * region_embedding.ZERO_TARGETS
    total += scale * np.mean([score(w) ** 2 for w in negatives])
    for w in negatives:
      bias_grad[w] += scale * 2 * score(w) / len(negatives) / 2
  loss, grads = jax.value_and_grad(region_embedding.region_loss)(
      params, jnp.asarray(regions), jnp.asarray(neighbours),
      jnp.asarray(negatives), first)
  np.testing.assert_allclose(loss, total / 2, rtol=1e-5)
  np.testing.assert_allclose(grads["output"]["bias"], bias_grad, rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("ngrams", [1, 3])
def test_region_embeddings_learn_which_words_are_neighbours(ngrams):
  """In a text where word 10 + i is always followed, two words on, by word
  30 + i, the region of 10 + i scores 30 + i far above words never seen
  (had the targets been the region's own words, or nothing learned, 30 + i
  would score as any other word)."""
  rng = np.random.default_rng(0)
  reviews = []
  for _ in range(400):
    pair = rng.integers(0, 10, 6)
    review = np.stack([10 + pair, rng.integers(50, 60, 6), 30 + pair], 1)
    reviews.append(review.reshape(-1).astype(np.int32))
  learned = region_embedding.train(reviews, 64, 16, 3, epochs=30,
                                   ngrams=ngrams)
  fixed, trained = learned["region"], learned["output"]
  h = np.asarray(region_embedding.region_vectors(
      fixed, jnp.asarray([[0, 10 + i, 0] for i in range(10)], jnp.int32),
      64, 3, ngrams))
  scores = h @ trained["table"].T + trained["bias"]  # [10, 64]
  partner = scores[np.arange(10), 30 + np.arange(10)]
  other = scores[:, 40:50]
  assert np.all(partner > 0.1) and np.all(np.abs(other) < 0.01)


def test_region_embeddings_read_train_and_unlabeled_text_never_held_out(
    fake_imdb, tmp_path, monkeypatch):
  """The text the embeddings learn from is the train reviews kept for
  training plus the unlabeled ones: no validation or test review."""
  from flax_sentiment.training import loop  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(30)]
  def texts(prefix, n):
    return [" ".join([f"{prefix}{i}"] + list(rng.choice(words, 5))).encode()
            for i in range(n)]
  data = {"train": (texts("train", 40), np.arange(40) % 2),
          "test": (texts("test", 16), np.arange(16) % 2),
          "unsupervised": (texts("unlabeled", 10), -np.ones(10, int))}
  monkeypatch.setattr(imdb_source, "read_split",
                      lambda _, split: (data[split][0],
                                        data[split][1].astype(np.int32)))
  seen = []
  learn = region_embedding.train
  def spy(ids, *args, **kwargs):
    seen.extend(ids)
    return learn(ids, *args, **kwargs)
  monkeypatch.setattr(region_embedding, "train", spy)
  config = tiny_config(model="region_cnn", region_embedding_dim=4,
                       region_embedding_epochs=1, num_words=200,
                       vocabulary_splits="train+unsupervised",
                       validation_examples=8, num_epochs=1, progress=False,
                       cache_dir=str(tmp_path / "cache"))
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  imdb = datasets.load_imdb(config)
  first_word = lambda ids: imdb.vocabulary[ids[ids > 0][0] - 2]
  firsts = [first_word(review) for review in seen]
  assert len(seen) == 32 + 10 and len(set(firsts)) == 42
  assert not any(f.startswith("test") for f in firsts)
  assert sum(f.startswith("unlabeled") for f in firsts) == 10
  validation = {first_word(row) for row in imdb.validation.tokens}
  assert len(validation) == 8 and not validation & set(firsts)


def test_region_embeddings_are_cached_by_text_and_settings(tmp_path,
                                                          monkeypatch):
  rng = np.random.default_rng(0)
  ids = [rng.integers(2, 40, 12).astype(np.int32) for _ in range(30)]
  config = tiny_config(model="region_cnn", region_embedding_dim=4,
                       region_embedding_epochs=1, num_words=40,
                       cache_dir=str(tmp_path))
  calls = []
  learn = region_embedding.train
  monkeypatch.setattr(region_embedding, "train",
                      lambda *a, **k: calls.append(a) or learn(*a, **k))
  first = region_embedding.region_embedding_params(ids, config)
  again = region_embedding.region_embedding_params(ids, config)
  assert len(calls) == 1
  for name in ("table", "bias"):
    np.testing.assert_array_equal(first[name], again[name])
  # Other text, or another setting, is learned anew.
  region_embedding.region_embedding_params(ids[1:], config)
  config.region_size = 3
  region_embedding.region_embedding_params(ids, config)
  assert len(calls) == 3 and len(list(tmp_path.glob("region_embedding_*"))) == 3
  config.region_embedding_ngrams = 3
  grams = region_embedding.region_embedding_params(ids, config)
  assert len(calls) == 4 and set(grams) == {"table", "bias", "ngram_table"}
  assert set(region_embedding.region_embedding_params(ids, config)) == set(
      grams) and len(calls) == 4


def test_region_embedding_stays_fixed_while_the_cnn_trains():
  """AdamW with weight decay and gradient clipping: every other parameter
  moves, the region embedding does not (not even by the decay)."""
  config = tiny_config(model="region_cnn", region_embedding_dim=4,
                       embed_dim=6, num_words=30, weight_decay=0.1,
                       clip_grad_norm=1.0, learning_rate=0.05)
  model = classifier.model_from_config(config)
  state = train_steps.create_train_state(model, config, jax.random.key(0))
  before = jax.tree.map(np.asarray, state.params)
  rng = np.random.default_rng(0)
  batch = {"tokens": jnp.asarray(rng.integers(0, 30, (8, 16)), jnp.int32),
           "labels": jnp.asarray(np.arange(8) % 2, jnp.int32),
           "weights": jnp.ones(8, jnp.float32)}
  for _ in range(3):
    state, _ = jax.jit(train_steps.train_step)(state, batch)
  after = jax.tree.map(np.asarray, state.params)
  for name in after:
    moved = jax.tree.leaves(jax.tree.map(
        lambda a, b: not np.array_equal(a, b), after[name], before[name]))
    assert (not any(moved)) if name == region_cnn.FIXED else all(moved), name


@pytest.mark.parametrize("overrides, named", [
    (dict(model="ngrams", ngram_c_values="1", region_embedding_dim=100),
     "not ngrams"),
    (dict(region_embedding_dim=100, pretrain_lm_epochs=1),
     "words it is to predict"),
    (dict(model="region_cnn", bidirectional=True), "bidirectional=True"),
    (dict(model="region_cnn", pooling="max"), "pooling='max'"),
    (dict(model="region_cnn", pretrain_lm_epochs=1), "pretrain_lm_epochs=1"),
    (dict(model="region_cnn", implementation="pallas"), "pallas"),
    (dict(region_embedding_ngrams=3), "region_embedding_ngrams=3 shapes"),
    (dict(region_embedding_dim=100, region_size=3,
          region_embedding_ngrams=4), "use at most 3"),
])
def test_options_region_embeddings_and_the_cnn_cannot_use_are_refused(overrides, named):
  with pytest.raises(ConfigError, match=named):
    checks.validate_config(tiny_config(**overrides))


@pytest.mark.parametrize("implementation", ["hoisted", "stock"])
def test_recurrent_side_input_is_the_region_embedding_joined_to_the_words(
    implementation):
  """The recurrent model with region embeddings equals Flax's own nn.RNN
  over each token's embedding joined with its region's embedding (computed
  here by hand), both directions, masked."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  config = tiny_config(region_embedding_dim=3, region_size=3, embed_dim=4,
                       hidden_dim=5, num_words=20, bidirectional=True,
                       mask_padding=True, padding="post", pooling="last+max",
                       implementation=implementation)
  model = classifier.model_from_config(config)
  tokens = jnp.asarray([[5, 7, 9, 3, 0, 0], [4, 4, 8, 2, 11, 6]], jnp.int32)
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32),
      model.init(jax.random.key(0), tokens)["params"])
  fixed = params[region_cnn.FIXED]
  emb = np.asarray(params["embedding"]["embedding"])
  inputs = np.zeros((2, 6, 4 + 3), np.float32)
  for b, review in enumerate(np.asarray(tokens)):
    for t in range(6):
      region = [review[s] for s in (t - 1, t, t + 1)
                if 0 <= s < 6 and review[s] != 0]
      tv = relu(sum(np.asarray(fixed["table"])[w] for w in region)
                + np.asarray(fixed["bias"]))
      inputs[b, t] = np.concatenate([emb[review[t]], tv])
  lengths = np.asarray([4, 6])
  finals, states = [], []
  for name, reverse in (("rnn", False), ("rnn_backward", True)):
    rnn = nn.RNN(nn.LSTMCell(5), reverse=reverse, keep_order=True)
    carry, ys = rnn.apply({"params": params[name]}, jnp.asarray(inputs),
                          seq_lengths=lengths, return_carry=True)
    finals.append(carry[1])
    states.append(ys)
  states = jnp.concatenate(states, -1)
  real = (np.arange(6)[None, :] < lengths[:, None])[..., None]
  pooled = jnp.concatenate(
      [jnp.concatenate(finals, -1),
       jnp.max(jnp.where(real, states, -jnp.inf), axis=1)], -1)
  want = pooled @ params["dense"]["kernel"][:, 0] + params["dense"]["bias"][0]
  np.testing.assert_allclose(model.apply({"params": params}, tokens), want,
                             rtol=1e-5, atol=1e-5)
