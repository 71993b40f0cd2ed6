"""`train --init-from B --init-encoder-layers N --init-decoder-layers M`: a trained model grown
into a deeper encoder and a shallower decoder (progressive stacking), then fine-tuned."""

from __future__ import annotations

import json
from dataclasses import replace

import torch
from conftest import assert_one_line_error
from typer.testing import CliRunner

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.cli.app import app
from xformer_cli.model import build_model
from xformer_cli.training.grow import describe, grown_config, grown_state, layer_sources


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_a_deeper_stack_repeats_the_trained_one_on_top_and_a_shallower_keeps_layers_spread_evenly():
    assert layer_sources(3, 8) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert layer_sources(3, 2) == [0, 2]
    assert layer_sources(6, 3) == [0, 2, 5]
    assert layer_sources(3, 1) == [2]
    assert layer_sources(2, 2) == [0, 1]


def test_the_grown_model_holds_each_layer_of_its_source_and_every_other_weight(trained_bundle_dir):
    trained = load_bundle(trained_bundle_dir).model
    config = grown_config(trained.config, 5, 1)
    assert (config.n_encoder_layers, config.n_decoder_layers) == (5, 1) and grown_config(trained.config, 0, 0) == trained.config
    state = grown_state(trained.state_dict(), trained.config, config)
    model = build_model(config)
    model.load_state_dict(state, strict=True)  # no tensor missing or left over
    before = trained.state_dict()
    for index, source in enumerate([0, 1, 0, 1, 0]):
        for name, tensor in model.encoder.layers[index].state_dict().items():
            assert torch.equal(tensor, before[f"encoder.layers.{source}.{name}"])
    assert all(torch.equal(t, before[f"decoder.layers.1.{n}"]) for n, t in model.decoder.layers[0].state_dict().items())
    assert torch.equal(model.embedding.weight, trained.embedding.weight)
    state["encoder.layers.2.ffn.fc1.weight"].add_(1.0)  # copies: the repeated layers train apart
    assert not torch.equal(state["encoder.layers.0.ffn.fc1.weight"], state["encoder.layers.2.ffn.fc1.weight"])
    assert (
        describe(trained.config, config)
        == "encoder 2 -> 5 layers (from trained layers 0 1 0 1 0), decoder 2 -> 1 layers (from trained layers 1)"
    )


def test_the_same_counts_give_the_trained_model_unchanged(trained_bundle_dir):
    trained = load_bundle(trained_bundle_dir).model.eval()
    model = build_model(trained.config).eval()
    model.load_state_dict(grown_state(trained.state_dict(), trained.config, trained.config))
    src, tgt = torch.tensor([[5, 6, 7, 3]]), torch.tensor([[2, 8, 9]])
    with torch.inference_mode():
        assert torch.equal(model(src, tgt), trained(src, tgt))


def test_train_grows_the_bundle_says_how_and_resumes_the_grown_run(trained_bundle_dir, tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "grown"
    args = ["train", "--init-from", trained_bundle_dir, "--src", src, "--tgt", tgt, "--out", out, "--batch-tokens", 600, "--threads", 1]
    args += ["--init-encoder-layers", 4, "--init-decoder-layers", 1, "--save-every", 2, "--valid-every", 0]
    first = run(*args, "--max-steps", 2)
    assert first.exit_code == 0, first.output
    assert f"grew {trained_bundle_dir}: encoder 2 -> 4 layers (from trained layers 0 1 0 1), decoder 2 -> 1 layers" in first.stderr
    resumed = run(*args, "--max-steps", 4, "--resume")
    assert resumed.exit_code == 0, resumed.output
    grown = load_bundle(out / "bundle")
    assert (grown.model.config.n_encoder_layers, grown.model.config.n_decoder_layers) == (4, 1)
    assert json.loads((out / "bundle" / "config.json").read_text())["model"]["n_encoder_layers"] == 4
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*.safetensors"))[-1] == "step-0000004.safetensors"


def test_growing_without_a_bundle_is_a_one_line_error(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    result = run("train", "--src", src, "--tgt", tgt, "--out", tmp_path / "run", "--init-decoder-layers", 1)
    assert_one_line_error(result, "init_encoder_layers and init_decoder_layers grow a bundle: they need init_from")


def test_identity_growth_of_a_pre_norm_model_computes_exactly_what_it_did_and_can_still_learn(trained_bundle_dir):
    trained = load_bundle(trained_bundle_dir).model
    config = replace(trained.config, norm_position="pre")
    torch.manual_seed(0)
    small = build_model(config).eval()
    with torch.no_grad():  # every bias nonzero, so a zeroed projection is not zero by chance
        for name, tensor in small.named_parameters():
            if name.endswith("bias"):
                tensor.uniform_(-0.5, 0.5)
    bigger = grown_config(config, 4, 3)
    state = grown_state(small.state_dict(), config, bigger, identity=True)
    grown = build_model(bigger).eval()
    grown.load_state_dict(state, strict=True)
    src, tgt = torch.tensor([[5, 6, 7, 3], [9, 8, 3, 0]]), torch.tensor([[2, 8, 9], [2, 4, 5]])
    with torch.inference_mode():
        assert torch.allclose(grown(src, tgt), small(src, tgt), atol=1e-5)
    added = [name for name, t in state.items() if not t.any()]
    encoder_parts, decoder_parts = ("self_attn.out_proj", "ffn.fc2"), ("self_attn.out_proj", "encoder_attn.out_proj", "ffn.fc2")
    assert sorted(added) == sorted(
        f"{stack}.layers.{i}.{part}.{kind}"
        for stack, layers, parts in (("encoder", (2, 3), encoder_parts), ("decoder", (2,), decoder_parts))
        for i in layers
        for part in parts
        for kind in ("weight", "bias")
    )
    copied = state["encoder.layers.2.ffn.fc1.weight"]  # the weights below the zeroed projections are copies
    assert torch.equal(copied, small.state_dict()["encoder.layers.0.ffn.fc1.weight"])
    grown.train()
    loss = grown(src, tgt).logsumexp(-1).sum()
    loss.backward()
    assert grown.encoder.layers[3].ffn.fc2.weight.grad.abs().sum() > 0  # the zeroed projections are not stuck
    assert "added layers start as identities" in describe(config, bigger, identity=True)


def test_identity_growth_of_a_post_norm_model_is_a_one_line_error(trained_bundle_dir, tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    args = ["train", "--init-from", trained_bundle_dir, "--src", src, "--tgt", tgt, "--out", tmp_path / "run", "--max-steps", 1]
    result = run(*args, "--init-encoder-layers", 3, "--init-new-layers", "identity")
    assert_one_line_error(result, "init_new_layers = identity needs a pre-norm model")
    assert_one_line_error(run(*args, "--init-new-layers", "zeros"), "init_new_layers must be copy or identity (got 'zeros')")
    assert_one_line_error(run(*args, "--init-new-layers", "identity"), "init_new_layers = identity says how grown layers start")
