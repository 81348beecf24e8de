"""Integrated gradients: contributions add up to the logit's change from the
baseline, a trained model credits "good" and blames "bad", words past
seq_len are reported as not read, positions match `tokenizer.pad_sequences`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_sentiment.data import tokenizer
from flax_sentiment.model import classifier, scoring
from flax_sentiment.training import train_steps
from flax_sentiment.usage import explain
from tests.conftest import tiny_config

NEUTRAL = "the a film movie plot acting was story".split()
VOCABULARY = ["good", "bad"] + NEUTRAL  # "zzz" and the like: unknown (id 1)
TEXTS = ("the film was good", "bad plot bad acting", "good", "a bad zzz movie",
         "the story was good and the acting was good but the plot was bad",
         "zzz")
MODELS = {  # the notebook's model, and a masked bidirectional one
    "lstm": dict(),
    "bilstm_masked_post": dict(mask_padding=True, bidirectional=True,
                               padding="post"),
}


def fake_reviews(rng: np.random.Generator, n: int
                 ) -> tuple[list[list[str]], np.ndarray]:
  """n reviews of 2-10 neutral words with "good" (label 1) or "bad" (0)
  once or twice among them."""
  reviews, labels = [], rng.integers(0, 2, n)
  for label in labels:
    words = list(rng.choice(NEUTRAL, rng.integers(2, 11)))
    for _ in range(rng.integers(1, 3)):
      words.insert(rng.integers(len(words) + 1), ["bad", "good"][label])
    reviews.append(words)
  return reviews, labels.astype(np.float32)


def trained(steps: int = 300, **overrides):
  """(config, model, params) of a tiny model trained `steps` Adam steps
  on good/bad reviews (in-process, seconds)."""
  config = tiny_config(num_words=len(VOCABULARY) + 2, seq_len=12,
                       batch_size=32, learning_rate=0.01, **overrides)
  model = classifier.model_from_config(config)
  state = train_steps.create_train_state(model, config, jax.random.key(0), steps)
  step = jax.jit(train_steps.train_step)
  rng = np.random.default_rng(0)
  for _ in range(steps):
    reviews, labels = fake_reviews(rng, config.batch_size)
    tokens = tokenizer.pad_sequences(tokenizer.encode(reviews, VOCABULARY),
                                     config.seq_len, config.padding,
                                     config.truncating)
    state, _ = step(state, {"tokens": jnp.asarray(tokens),
                            "labels": jnp.asarray(labels),
                            "weights": jnp.ones_like(labels)})
  return config, model, state.params


@pytest.fixture(scope="module", params=list(MODELS))
def model_and_params(request):
  return trained(**MODELS[request.param])


@pytest.fixture(scope="module")
def lstm():
  return trained(**MODELS["lstm"])


def tokens_of(texts, config) -> np.ndarray:
  return tokenizer.pad_sequences(
      tokenizer.encode([tokenizer.tokenize(t) for t in texts], VOCABULARY),
      config.seq_len, config.padding, config.truncating)


@pytest.mark.parametrize("baseline", explain.BASELINES)
def test_contributions_add_up_to_the_logit_change(model_and_params,
                                                  baseline):
  """Completeness: the read words' contributions sum to logit(text) -
  logit(baseline) within 1% at 64 steps; the logit is the one scoring
  gives."""
  config, model, params = model_and_params
  explanations = explain.explain_texts(model, params, config, VOCABULARY,
                                       TEXTS, steps=64, baseline=baseline)
  changes = [e.logit - e.baseline_logit for e in explanations]
  assert np.median(np.abs(changes)) > 0.5  # a real change to account for
  for e, change in zip(explanations, changes):
    assert e.total == pytest.approx(change, rel=0.01, abs=1e-3), e
  np.testing.assert_allclose(
      [e.logit for e in explanations],
      scoring.Scorer(model, params).logits(tokens_of(TEXTS, config)),
      rtol=1e-5, atol=1e-5)


def test_baseline_logit_is_that_of_the_baseline_review(model_and_params):
  """"zero": the logit with every word's embedding replaced by zeros (here
  through a copy of the parameters whose unknown-word row is zero, every
  word read as unknown); "padding", for a model that reads padding
  (unmasked): the logit of the empty review."""
  config, model, params = model_and_params
  tokens = tokens_of(TEXTS, config)
  zero_row = jax.tree.map(lambda x: x, params)
  zero_row["embedding"]["embedding"] = params["embedding"][
      "embedding"].at[tokenizer.OOV_ID].set(0.0)
  as_unknown = np.where(tokens != tokenizer.PAD_ID, tokenizer.OOV_ID, tokenizer.PAD_ID)
  want = scoring.Scorer(model, zero_row).logits(as_unknown)
  got = explain.Explainer(model, params, steps=2)(tokens)["baseline_logits"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  if not config.mask_padding:
    empty = scoring.Scorer(model, params).logits(np.zeros_like(tokens))
    got = explain.Explainer(model, params, steps=2,
                            baseline="padding")(tokens)["baseline_logits"]
    np.testing.assert_allclose(got, empty, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", ["trapezoid", "gauss-legendre"])
def test_the_other_rules_add_up_too(lstm, rule):
  config, model, params = lstm
  for e in explain.explain_texts(model, params, config, VOCABULARY, TEXTS,
                                 steps=64, rule=rule):
    assert e.total == pytest.approx(e.logit - e.baseline_logit, rel=0.01,
                                    abs=1e-3)


def test_trained_model_credits_good_and_blames_bad(model_and_params):
  config, model, params = model_and_params
  texts = ["the film was good", "the film was bad", "good", "bad",
           "a good movie", "the plot was bad acting"]
  explanations = explain.explain_texts(model, params, config, VOCABULARY,
                                       texts)
  for text, e in zip(texts, explanations):
    positive = "good" in text.split()
    assert (e.probability > 0.5) == positive, (text, e.probability)
    mood = {w.word: w.contribution for w in e.words}["good" if positive
                                                      else "bad"]
    assert (mood > 0) == positive, (text, e.words)
    # The sentiment word counts most.
    assert abs(mood) == max(abs(w.contribution) for w in e.words), e.words


def test_unknown_words_are_read_and_get_a_contribution(lstm):
  config, model, params = lstm
  e, = explain.explain_texts(model, params, config, VOCABULARY,
                             ["a bad zzz movie"])
  unknown = [w for w in e.words if not w.known]
  assert [w.word for w in unknown] == ["zzz"]
  assert unknown[0].read and unknown[0].contribution != 0.0


@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_words_beyond_seq_len_are_not_read(lstm, truncating):
  config, model, params = lstm
  config = config.copy_and_resolve_references()
  config.truncating = truncating
  words = ["bad"] * 3 + ["the"] * (config.seq_len - 6) + ["good"] * 6
  e, = explain.explain_texts(model, params, config, VOCABULARY,
                             [" ".join(words)])
  assert [w.word for w in e.words] == words
  read = [w.read for w in e.words]
  cut = len(words) - config.seq_len
  want = ([False] * cut + [True] * config.seq_len if truncating == "pre"
          else [True] * config.seq_len + [False] * cut)
  assert read == want
  assert all(w.contribution is None for w in e.words if not w.read)
  # Every attributed position is a read word's (padding positions get 0).
  attributions = explain.Explainer(model, params)(
      tokens_of([" ".join(words)], config))["attributions"]
  assert e.total == pytest.approx(float(attributions.sum()), rel=1e-6)
  line = explain.render(e)
  assert f"[{cut} words not read]" in line
  assert line.startswith("[") == (truncating == "pre")


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_read_positions_are_where_pad_sequences_puts_each_word(padding,
                                                               truncating):
  seq_len = 5
  for length in (0, 1, 4, 5, 6, 9):
    ids = np.arange(10, 10 + length, dtype=np.int32)  # word i has id 10 + i
    row = tokenizer.pad_sequences([ids], seq_len, padding, truncating)[0]
    places = explain.read_positions(length, seq_len, padding, truncating)
    assert sum(p is not None for p in places) == min(length, seq_len)
    for i, place in enumerate(places):
      if place is None:
        assert 10 + i not in row
      else:
        assert row[place] == 10 + i


def test_batches_and_their_padding_rows_change_nothing(lstm):
  config, model, params = lstm
  tokens = tokens_of(TEXTS[:5], config)
  small = explain.Explainer(model, params, steps=8, batch_size=2)(tokens)
  whole = explain.Explainer(model, params, steps=8, batch_size=8)(tokens)
  for key in whole:
    assert small[key].shape == (5,) + whole[key].shape[1:]
    np.testing.assert_allclose(small[key], whole[key], rtol=1e-5, atol=1e-6)
  assert np.all(whole["attributions"][tokens == tokenizer.PAD_ID] == 0)


def test_render_colors_on_a_terminal_and_marks_plain_text():
  e = explain.Explanation(
      text="good film bad", logit=0.5, baseline_logit=0.0, steps=64,
      baseline="zero", words=(
          explain.Word("good", 0.9, True, True),
          explain.Word("film", 0.01, True, True),
          explain.Word("bad", -0.4, True, True),
          explain.Word("long", None, False, True)))
  assert explain.render(e) == ("good[+0.90] film[+0.01] bad[-0.40] "
                               "[1 word not read]")
  colored = explain.render(e, color=True)
  assert "\x1b[38;5;46mgood\x1b[0m" in colored  # brightest green
  assert "\x1b[38;5;151mfilm\x1b[0m" in colored  # faint green
  assert "\x1b[38;5;210mbad\x1b[0m" in colored  # middling red
  assert "[+" not in colored and "[-" not in colored  # no plain markers
  assert "\x1b[2m[1 word not read]\x1b[0m" in colored  # dim


def test_bad_settings_are_refused():
  assert explain.settings_problem(64) is None
  assert "steps" in explain.settings_problem(1, rule="trapezoid")
  assert explain.settings_problem(1) is None  # midpoint
  assert "baseline" in explain.settings_problem(64, baseline="mean")
  alphas, weights = explain.path_points(5, "trapezoid")
  np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
  np.testing.assert_allclose(weights.sum(), 1.0)
  for rule in explain.RULES:  # each integrates a cubic exactly enough
    alphas, weights = explain.path_points(64, rule)
    assert np.sum(weights * alphas ** 3) == pytest.approx(0.25, rel=1e-3)
