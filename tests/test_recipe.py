"""`flax-sentiment recipe`: a recipe's members trained (finished ones
skipped), ensembled on validation, reported."""

import json
import pathlib
import textwrap

import pytest

from flax_sentiment import cli, recipe
from flax_sentiment.configuration import loading
from flax_sentiment.configs import best

pytest.importorskip("sklearn")

RECIPE = textwrap.dedent("""
    from flax_sentiment import recipe
    from flax_sentiment.configs import default, ngrams

    def tiny(**fields):
      config = default.get_config()
      config.update(dict(num_words=64, embed_dim=8, hidden_dim=8, seq_len=16,
                         batch_size=8, eval_batch_size=16, num_epochs=2,
                         steps_per_call=4, checkpoint_every_steps=8,
                         validation_examples=32, progress=False,
                         cache_dir={cache!r}))
      config.update(fields)
      return config

    def get_recipe():
      return recipe.Recipe(
          members={{"lstm": tiny(),
                    "ngrams": tiny(model="ngrams", ngram_c_values="0.1,1")}},
          seeded=("lstm",), seeds=(0, 1))
    """)


def _recipe_file(tmp_path) -> pathlib.Path:
  path = tmp_path / "tiny_recipe.py"
  path.write_text(RECIPE.format(cache=str(tmp_path / "cache")))
  return path


def test_the_shipped_recipe_lists_its_runs_and_ensembles(tmp_path):
  shipped = recipe.load_recipe("best")
  assert set(shipped.members) == {best.BILSTM, "ngrams"}
  runs = recipe.member_runs(shipped, tmp_path, shipped.seeds)
  assert [r.name for r in runs] == [f"{best.BILSTM}-seed{s}" for s in
                                    (0, 1, 2)] + ["ngrams"]
  assert [r.config.seed for r in runs[:3]] == [0, 1, 2]
  # Every member holds out the same validation reviews (ensembles need it).
  assert len({(r.config.validation_examples, r.config.validation_seed,
               r.config.max_train_examples) for r in runs}) == 1
  groups = recipe.ensembles(runs, shipped, tmp_path, shipped.seeds)
  assert groups[tmp_path / "ensemble-seed1"] == [runs[1].workdir,
                                                 runs[3].workdir]
  assert groups[tmp_path / "ensemble_all"] == [r.workdir for r in runs]


def test_a_recipe_trains_ensembles_reports_and_skips_finished_runs(
    fake_imdb, tmp_path, capsys):
  tiny = recipe.load_recipe(str(_recipe_file(tmp_path)))
  workdir = tmp_path / "best"
  said = []
  first = recipe.run_recipe(tiny, workdir, say=said.append)
  assert first["trained"] == ["lstm-seed0", "lstm-seed1", "ngrams"]
  for name in ("lstm-seed0", "lstm-seed1", "ngrams"):
    assert (workdir / name / "result.json").is_file()
  for name in ("ensemble-seed0", "ensemble-seed1", "ensemble_all"):
    record = json.loads((workdir / name / "ensemble.json").read_text())
    assert abs(sum(record["weights"]) - 1) < 1e-6
    assert record["weights_chosen_by"].startswith("validation")
  assert len(json.loads((workdir / "ensemble_all" / "ensemble.json"
                         ).read_text())["workdirs"]) == 3
  table = (workdir / "report.md").read_text()
  for row in ("| lstm | 2 |", "| ngrams | 1 |", "| ensemble | 2 |",
              "| ensemble_all | 1 |"):
    assert row in table, table
  # Again: nothing trains, the same ensembles come out.
  again = recipe.run_recipe(tiny, workdir, say=said.append)
  assert again["trained"] == []
  assert again["ensembles"] == first["ensembles"]
  assert sum("skipped" in line for line in said) == 3


def test_the_command_dry_run_and_its_one_line_errors(tmp_path, capsys):
  cli.main(["recipe", "--config", str(_recipe_file(tmp_path)), "--workdir",
            str(tmp_path / "best"), "--dry-run"])
  out = capsys.readouterr().out
  assert "lstm-seed1: to train" in out
  assert "ensemble_all: lstm-seed0, lstm-seed1, ngrams" in out
  assert not (tmp_path / "best").exists()  # a dry run writes nothing
  with pytest.raises(SystemExit, match="has no get_recipe"):
    cli.main(["recipe", "--config", "lstm", "--dry-run"])
  with pytest.raises(SystemExit, match="--seeds 'a,1'"):
    cli.main(["recipe", "--seeds", "a,1", "--dry-run"])
  broken = tmp_path / "broken.py"
  broken.write_text("def get_recipe():\n  return {}['x']\n")
  with pytest.raises(SystemExit, match=r"broken.py:2: get_recipe\(\) raised "
                     "KeyError"):
    cli.main(["recipe", "--config", str(broken), "--dry-run"])
  assert loading.names()  # the shipped configs still load
