"""Ensembles of runs: evaluation and prediction average probabilities."""

import numpy as np
import pytest

from flax_sentiment.training import loop
from flax_sentiment.usage import ensemble, trained
from flax_sentiment.runtime.errors import UserError
import json

from tests.conftest import one_error_line, predict_cli, tiny_config


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
  from tests.fake_imdb import mock_imdb  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("seeds")
  histories = []
  with mock_imdb():
    for seed in (0, 1):
      config = tiny_config(cache_dir=str(root / "cache"), seed=seed,
                           num_epochs=1)
      histories.append(loop.train_and_evaluate(config, root / f"s{seed}"))
  return [root / "s0", root / "s1"], histories


def test_ensemble_accuracy_is_that_of_the_weighted_mixture(two_seeds,
                                                            fake_imdb):
  workdirs, histories = two_seeds
  result = ensemble.evaluate_ensemble(workdirs)
  for accuracy, history in zip(result["members_test_accuracy"], histories):
    # Each member scores what its run recorded for its last epoch.
    assert accuracy == pytest.approx(history[-1]["test_accuracy"], abs=1e-9)
  (p0, labels), (p1, _) = [ensemble.split_probabilities(w) for w in workdirs]
  assert not np.allclose(p0, p1)  # two seeds, two models
  w0, w1 = result["weights"]
  want = np.mean(((w0 * p0 + w1 * p1) > 0.5) == (labels > 0.5))
  assert result["test_accuracy"] == pytest.approx(want)
  equal = np.mean((((p0 + p1) / 2) > 0.5) == (labels > 0.5))
  assert result["equal_weights_test_accuracy"] == pytest.approx(equal)
  assert result["test_examples"] == len(labels) == 128
  # tiny_config has no validation split: equal weights, said as such.
  assert result["weights"] == [0.5, 0.5]
  assert result["weights_chosen_by"].startswith("equal")


def test_simplex_grid_covers_the_simplex():
  grid = ensemble.simplex_grid(3, 0.25)
  assert len(grid) == 15  # C(4 + 2, 2)
  np.testing.assert_allclose(grid.sum(axis=1), 1.0)
  assert (grid >= 0).all() and len({tuple(g) for g in grid}) == len(grid)
  assert ensemble.grid_step(4) == 0.05 and ensemble.grid_step(8) == 0.1
  assert ensemble.grid_step(40) is None


def test_choose_weights_finds_the_member_that_is_right():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 400)
  right = np.where(labels == 1, 0.7, 0.3)  # always right, unsure
  noise = rng.random(400)                  # a coin
  weights = ensemble.choose_weights(np.stack([noise, right]), labels)
  mixture = weights @ np.stack([noise, right])
  assert np.mean((mixture > 0.5) == labels) == 1.0
  assert weights[1] > weights[0]
  # Ties in accuracy go to the lower log-loss: both members are always
  # right, so every mixture is, and the sure one alone has the least loss.
  sure = np.where(labels == 1, 0.95, 0.05)
  np.testing.assert_allclose(
      ensemble.choose_weights(np.stack([right, sure]), labels), [0.0, 1.0])
  np.testing.assert_allclose(
      ensemble.choose_weights(np.stack([sure, right]), labels), [1.0, 0.0])
  # Then to the weights nearest equal ones (identical members tie on both).
  same = ensemble.choose_weights(np.stack([right, right]), labels)
  np.testing.assert_allclose(same, [0.5, 0.5])


def test_weights_are_chosen_without_the_test_reviews(monkeypatch):
  """Validation favours member 0 and test member 1: the weights follow
  validation, and test labels never change them."""
  rng = np.random.default_rng(1)
  labels = {"validation": rng.integers(0, 2, 300),
            "test": rng.integers(0, 2, 300)}
  scored = {}
  for split, y in labels.items():
    good = np.where(y == 1, 0.8, 0.2)
    bad = np.where(rng.random(300) < 0.4, 1 - good, good)
    scored[split] = ([good, bad] if split == "validation" else [bad, good])

  def fake(workdir, split="test", batch_size=500):
    return scored[split][int(workdir)], labels[split]

  monkeypatch.setattr(ensemble, "split_probabilities", fake)
  result = ensemble.evaluate_ensemble(["0", "1"])
  assert result["weights"][0] > result["weights"][1]
  labels["test"] = 1 - labels["test"]
  assert ensemble.evaluate_ensemble(["0", "1"])["weights"] == result["weights"]


def test_a_damaged_ensemble_file_is_one_line(tmp_path):
  with pytest.raises(UserError, match="ensemble.json not found"):
    ensemble.read_ensemble(tmp_path)
  (tmp_path / "ensemble.json").write_text('{"workdirs": ["a"]}')
  with pytest.raises(UserError, match="damaged"):
    ensemble.read_ensemble(tmp_path)


def test_predict_of_several_workdirs_is_the_mean(two_seeds):
  workdirs, _ = two_seeds
  texts = ["great wonderful film", "awful boring movie"]
  members = [trained.load_predictor(w)(texts) for w in workdirs]
  np.testing.assert_allclose(trained.load_ensemble(workdirs)(texts),
                             np.mean(members, axis=0), rtol=1e-6)
  np.testing.assert_array_equal(trained.load_ensemble(workdirs[:1])(texts),
                                members[0])


def test_predict_weights_given_or_recorded(two_seeds, tmp_path):
  workdirs, _ = two_seeds
  texts = ["great wonderful film", "awful boring movie"]
  members = [trained.load_predictor(w)(texts) for w in workdirs]
  weighted = trained.load_ensemble(workdirs, weights=[0.25, 0.75])(texts)
  np.testing.assert_allclose(weighted, 0.25 * members[0] + 0.75 * members[1],
                             rtol=1e-6)
  (tmp_path / "ensemble.json").write_text(json.dumps(
      {"workdirs": [str(w) for w in workdirs], "weights": [0.25, 0.75]}))
  lines = [predict_cli("--ensemble", str(tmp_path), "--json", *texts),
           predict_cli(*sum([["--workdir", str(w)] for w in workdirs], []),
                       "--weights", "0.25,0.75", "--json", *texts)]
  for proc in lines:
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(l)["probability_positive"]
           for l in proc.stdout.splitlines()]
    np.testing.assert_allclose(got, weighted, rtol=1e-5)
  bad = predict_cli("--workdir", str(workdirs[0]), "--workdir",
                    str(workdirs[1]), "--weights", "0.5", "great")
  assert "--weights" in one_error_line(bad)
