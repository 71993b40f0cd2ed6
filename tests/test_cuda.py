"""The GPU path. Every test here needs CUDA and is skipped, with the reason, where there is none
(bench/speed/gpu.sh runs the suite on a GPU machine)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.cli.app import app
from xformer_cli.decoding.translator import Translator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?", "Das ist gut."]


def test_training_on_cuda_in_bf16_learns_and_ends_with_a_cpu_loadable_bundle(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--src",
            str(src),
            "--tgt",
            str(tgt),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--vocab-size",
            "500",
            "--batch-tokens",
            "600",
            "--max-steps",
            "30",
            "--log-every",
            "5",
            "--device",
            "cuda",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "device cuda" in result.stderr
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert losses[-1] < losses[0]
    assert next(load_bundle(out / "bundle").model.parameters()).device.type == "cpu"


def test_translation_on_cuda_finds_the_cpus_hypotheses(trained_bundle_dir):
    gpu = Translator.load(str(trained_bundle_dir), device="cuda")
    cpu = Translator.load(str(trained_bundle_dir), device="cpu")
    for beam in (1, 3):
        config = cpu.config(beam_size=beam, n_best=1)
        on_gpu = gpu.translate_nbest(SENTENCES, config)
        on_cpu = cpu.translate_nbest(SENTENCES, config)
        assert [n[0].text for n in on_gpu] == [n[0].text for n in on_cpu]
        assert [n[0].score for n in on_gpu] == pytest.approx([n[0].score for n in on_cpu], abs=1e-3)


def test_fused_attention_trains_like_the_written_out_reference_on_cuda(trained_bundle_dir):
    model = load_bundle(trained_bundle_dir).model.cuda()
    src = torch.randint(4, model.config.vocab_size, (4, 9), device="cuda")
    tgt = torch.randint(4, model.config.vocab_size, (4, 7), device="cuda")
    grads = []
    for fused in (True, False):
        model.zero_grad()
        model.set_fused_attention(fused)
        torch.manual_seed(0)
        model.eval()  # no dropout: the two paths must see the same function
        model(src, tgt).float().pow(2).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for fused, reference in zip(*grads):
        torch.testing.assert_close(fused, reference, atol=1e-4, rtol=1e-3)


def test_float16_with_a_gradient_scaler_where_the_gpu_lacks_bfloat16(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    args = [
        "train",
        "--src",
        str(src),
        "--tgt",
        str(tgt),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--vocab-size",
        "500",
        "--batch-tokens",
        "600",
        "--log-every",
        "5",
        "--save-every",
        "10",
        "--device",
        "cuda",
    ]
    assert CliRunner().invoke(app, [*args, "--max-steps", "10"]).exit_code == 0
    from xformer_cli.training.checkpoint import load_checkpoint

    _, meta = load_checkpoint(out / "checkpoints" / "step-0000010.safetensors")
    assert meta["grad_scaler"]["scale"] > 0  # the scaler ran and its state is checkpointed
    result = CliRunner().invoke(app, [*args, "--max-steps", "30", "--resume"])
    assert result.exit_code == 0, result.output
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert losses[-1] < losses[0]


def test_the_attention_plot_draws_from_a_model_on_cuda_what_the_cpu_draws(trained_bundle_dir, tmp_path):
    from xformer_cli.decoding.attention_plot import cross_attention

    bundle = load_bundle(trained_bundle_dir)
    src_ids, tgt_ids = bundle.tokenizer.encode(["Ich habe Hunger."])[0], bundle.tokenizer.encode_target(["I am hungry."])[0]
    on_cpu = cross_attention(bundle.model, src_ids, tgt_ids)
    on_gpu = cross_attention(bundle.model.cuda(), src_ids, tgt_ids)
    assert on_gpu.device.type == "cpu" and on_gpu.shape == (len(tgt_ids) + 1, len(src_ids) + 1)
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-3)
    plot = tmp_path / "attention.png"
    result = CliRunner().invoke(
        app, ["translate", "-m", str(trained_bundle_dir), "--device", "cuda", "--attention-plot", str(plot)], input="Ich habe Hunger.\n"
    )
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
