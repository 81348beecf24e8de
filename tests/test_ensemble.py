"""Ensembles of runs: evaluation and prediction average probabilities."""

import numpy as np
import pytest

from flax_sentiment import ensemble, loop, predict
from tests.conftest import tiny_config


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


def test_ensemble_accuracy_is_that_of_the_mean_probability(two_seeds,
                                                           fake_imdb):
  workdirs, histories = two_seeds
  result = ensemble.evaluate_ensemble(workdirs)
  for accuracy, history in zip(result["members"], histories):
    # Each member scores what its run recorded for its last epoch.
    assert accuracy == pytest.approx(history[-1]["test_accuracy"], abs=1e-9)
  (p0, labels), (p1, _) = [ensemble.split_probabilities(w) for w in workdirs]
  assert not np.allclose(p0, p1)  # two seeds, two models
  want = np.mean((((p0 + p1) / 2) > 0.5) == (labels > 0.5))
  assert result["ensemble"] == pytest.approx(want)
  assert result["examples"] == len(labels) == 128


def test_predict_of_several_workdirs_is_the_mean(two_seeds):
  workdirs, _ = two_seeds
  texts = ["great wonderful film", "awful boring movie"]
  members = [predict.load_predictor(w)(texts) for w in workdirs]
  np.testing.assert_allclose(predict.load_ensemble(workdirs)(texts),
                             np.mean(members, axis=0), rtol=1e-6)
  np.testing.assert_array_equal(predict.load_ensemble(workdirs[:1])(texts),
                                members[0])
