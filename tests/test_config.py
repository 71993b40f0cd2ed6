from pathlib import Path

import pytest
from conftest import assert_one_line_error
from typer.testing import CliRunner

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.cli.app import app
from xformer_cli.errors import ConfigError
from xformer_cli.model.config import PRESETS, preset
from xformer_cli.recipe import Recipe, apply_flags, load_recipe

DEFAULT_RECIPE = Path(__file__).parents[1] / "models" / "tatoeba.toml"


def write_recipe(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_preset_flag_sets_only_the_size_fields_and_keeps_the_recipe():
    recipe = load_recipe(DEFAULT_RECIPE)  # small, pre-norm, 8k vocabulary
    tiny = apply_flags(recipe, preset="tiny").model
    for key, value in PRESETS["tiny"].items():
        assert getattr(tiny, key) == value
    assert (tiny.norm_position, tiny.norm, tiny.vocab_size, tiny.dropout) == ("pre", "layernorm", 8000, recipe.model.dropout)
    assert apply_flags(recipe, preset="big").model.dropout == 0.3  # big's preset names its dropout
    assert apply_flags(recipe).model == recipe.model


def test_precedence_is_recipe_then_preset_flag_then_other_flags(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, 'preset = "small"\n[model]\nd_model = 128\nnorm = "rmsnorm"\n'))
    assert (recipe.model.d_model, recipe.model.h, recipe.model.norm) == (128, 4, "rmsnorm")  # [model] over its preset
    merged = apply_flags(
        recipe, preset="tiny", model={"norm": None, "norm_position": "pre", "vocab_size": 500}, train={"lr": 1e-3, "max_steps": None}
    )
    assert (merged.model.d_model, merged.model.norm, merged.model.norm_position, merged.model.vocab_size) == (32, "rmsnorm", "pre", 500)
    assert merged.train.lr == 1e-3 and merged.train.max_steps == recipe.train.max_steps


def test_train_preset_tiny_keeps_the_recipes_norm_position(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    recipe = write_recipe(
        tmp_path,
        f'preset = "small"\n[model]\nvocab_size = 500\nnorm_position = "pre"\n'
        f'[train]\nsrc = "{src}"\ntgt = "{tgt}"\nbatch_tokens = 600\nthreads = 1\n',
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(recipe), "--preset", "tiny", "--max-steps", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = load_bundle(out / "bundle").model.config
    assert (config.d_model, config.norm_position) == (32, "pre")


@pytest.mark.parametrize(
    "line, fragments",
    [
        ('[train]\nlr = "fast"', ["lr", "must be a number", "'fast'"]),
        ("[train]\nmax_steps = 2.5", ["max_steps", "must be an integer", "2.5"]),
        ("[train]\nmax_steps = true", ["max_steps", "must be an integer"]),
        ("[model]\nnorm = 3", ["norm", "must be a string"]),
        ("[train]\nadam_betas = [0.9]", ["adam_betas", "must be a list of 2"]),
        ('[train]\nbf16 = "yes"', ["bf16", "must be true or false"]),
        ('[train]\ndatasets = "tatoeba"', ["datasets", "must be a list"]),
        ("model = 3", ["model", "must be a [model] table"]),
        ("preset = 3", ["unknown preset 3"]),
    ],
)
def test_a_mistyped_recipe_value_names_the_key_the_type_and_the_file(tmp_path, line, fragments):
    path = write_recipe(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    for fragment in [*fragments, str(path)]:
        assert fragment in str(caught.value)


def test_a_mistyped_recipe_is_a_one_line_error(tmp_path):
    path = write_recipe(tmp_path, '[train]\nlr = "fast"\n')
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "lr in [train] of", str(path), "must be a number (got 'fast')")


def test_numbers_convert_where_the_type_allows(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, '[train]\nlr = 1\nadam_betas = [0.9, 1]\ndatasets = ["a", "b"]\n'))
    assert recipe.train.lr == 1.0 and isinstance(recipe.train.lr, float)
    assert recipe.train.adam_betas == (0.9, 1.0) and recipe.train.datasets == ("a", "b")


def test_max_pieces_leaves_room_for_bos_or_eos():
    assert preset("tiny", max_len=64).max_pieces == 63
    with pytest.raises(ConfigError, match="max_len must be at least 2"):
        preset("tiny", max_len=1)
    assert Recipe().model.max_pieces == Recipe().model.max_len - 1


def test_tag_id_is_none_or_a_piece_of_the_vocabulary():
    assert Recipe().model.tag_id == -1  # none: bundles made before the tag load with it
    assert preset("tiny", vocab_size=500, tag_id=4).tag_id == 4
    for bad in (-2, 500):
        with pytest.raises(ConfigError, match=f"tag_id must be -1 \\(none\\) or a piece id below vocab_size \\(got {bad}\\)"):
            preset("tiny", vocab_size=500, tag_id=bad)


def test_a_recipe_may_sample_with_a_beam_of_one(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "[decode]\nsample = true\nbeam_size = 1\nsample_topk = 10\ntemperature = 1\nseed = 7\n"))
    assert (recipe.decode.sample, recipe.decode.sample_topk, recipe.decode.temperature, recipe.decode.seed) == (True, 10, 1.0, 7)
    with pytest.raises(ConfigError, match=r"beam size must be 1 \(got 5\)"):  # the default beam is for search
        load_recipe(write_recipe(tmp_path, "[decode]\nsample = true\n"))


@pytest.mark.parametrize("value", ["1.0", "1", "1.5", "-0.1", "nan", "inf"])
def test_subword_alpha_is_at_least_0_and_below_1(tmp_path, value):
    with pytest.raises(ConfigError, match=r"subword_alpha must be at least 0 \(off\) and below 1 \(got "):
        load_recipe(write_recipe(tmp_path, f"[train]\nsubword_alpha = {value}\n"))


def test_subword_alpha_comes_from_the_recipe_or_the_flag_and_is_off_by_default(tmp_path):
    assert Recipe().train.subword_alpha == 0.0
    with pytest.raises(ConfigError, match="subword_alpha in \\[train\\] of .* must be a number"):
        load_recipe(write_recipe(tmp_path, '[train]\nsubword_alpha = "0.1"\n'))
    recipe = load_recipe(write_recipe(tmp_path, "[train]\nsubword_alpha = 0\n"))
    assert recipe.train.subword_alpha == 0.0 and isinstance(recipe.train.subword_alpha, float)
    recipe = load_recipe(write_recipe(tmp_path, "[train]\nsubword_alpha = 0.1\n"))
    assert recipe.train.subword_alpha == 0.1 and apply_flags(recipe, train={"subword_alpha": 0.2}).train.subword_alpha == 0.2


@pytest.mark.parametrize("value", ["1", "-0.5"])
def test_a_bad_subword_alpha_flag_is_a_one_line_error_before_anything_is_made(tiny_corpus, tmp_path, value):
    src, tgt = tiny_corpus
    result = CliRunner().invoke(
        app, ["train", "--src", str(src), "--tgt", str(tgt), "--out", str(tmp_path / "run"), "--subword-alpha", value]
    )
    assert_one_line_error(result, f"subword_alpha must be at least 0 (off) and below 1 (got {float(value)})")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "models").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(recipe):
    """Each recipe in models/ parses into valid configs (the data it names need not exist here),
    its corpora resolved against the recipe's folder."""
    corpora = load_recipe(recipe).train.training_corpora()
    assert corpora, "a recipe names its corpora"
    assert all(Path(c.src).is_absolute() and Path(c.tgt).is_absolute() for c in corpora)
