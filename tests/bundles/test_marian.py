"""`xformer import`: a Marian (OPUS-MT) model in the transformers format, run by the from-scratch model.

The Hub is out of reach, so the tests make a tiny Marian model with `transformers` itself: two
stored SentencePiece models (tests/fixtures/tiny-marian-spm), one shared vocabulary,
seeded random weights (scaled up from transformers' 0.02 so that decisions are clear-cut, and an
EOS bias so that sentences end on their own), saved with `save_pretrained`. Then: the imported
model's logits equal transformers' to 1e-5, its greedy and beam token ids equal `generate`'s,
and every command that takes a bundle takes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F
import transformers
from conftest import MIN_MARGIN, assert_one_line_error, reference_search
from typer.testing import CliRunner

from xformer_cli.batching import pad_with_eos
from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.bundles.marian import import_marian
from xformer_cli.cli.app import app
from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.search import search
from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import ModelLoadError
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.layers import FeedForward
from xformer_cli.model.positional import sinusoidal_table
from xformer_cli.model.transformer import build_model

CORPUS = Path(__file__).parents[2] / "models" / "corpus" / "tatoeba"
SENTENCES = (CORPUS / "test.de").read_text(encoding="utf-8").splitlines()[:16]
SPM = Path(__file__).parents[1] / "fixtures" / "tiny-marian-spm"
EOS_BIAS = 4.5  # with weights N(0, 0.2): outputs end on their own after 1 to 16 pieces


def make_tiny_marian(out: Path, tie: bool = True) -> Path:
    """A tiny MarianMT model and tokenizer laid out as on the Hub (safetensors)."""
    out.mkdir(parents=True)
    for name in ("source.spm", "target.spm"):  # stored: another SentencePiece version learns another vocabulary
        shutil.copyfile(SPM / name, out / name)
    vocab = {"</s>": 0, "<unk>": 1}  # OPUS-MT's layout: </s> 0, <unk> 1, the pieces, <pad> last
    for name in ("source.spm", "target.spm"):
        sp = spm.SentencePieceProcessor(model_file=str(out / name))
        for piece in map(sp.IdToPiece, range(sp.GetPieceSize())):
            if piece not in vocab and piece not in ("<s>", "</s>", "<unk>"):
                vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    size, pad = len(vocab), len(vocab) - 1
    config = transformers.MarianConfig(
        vocab_size=size,
        decoder_vocab_size=size,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=pad,
        eos_token_id=0,
        decoder_start_token_id=pad,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" not in name:
                p.normal_(0.0, 0.2) if p.dim() > 1 else p.normal_(1.0 if "layer_norm.weight" in name else 0.0, 0.2)
        model.final_logits_bias.normal_(0.0, 1.0)
        model.final_logits_bias[0, 0] += EOS_BIAS
    model.save_pretrained(out)
    tokenizer = transformers.MarianTokenizer(
        str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"), source_lang="de", target_lang="en"
    )
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: cc-by-4.0\nlanguage: [de, en]\n---\n\n# tiny-marian\n\nA test model.\n", encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory) -> Path:
    return make_tiny_marian(tmp_path_factory.mktemp("marian") / "opus-mt-de-en")


@pytest.fixture(scope="module")
def imported_dir(marian_dir, tmp_path_factory) -> Path:
    return import_marian(str(marian_dir), tmp_path_factory.mktemp("imported") / "bundle")


@pytest.fixture(scope="module")
def reference(marian_dir):
    model = transformers.MarianMTModel.from_pretrained(marian_dir).eval()
    return model, transformers.MarianTokenizer.from_pretrained(marian_dir)


def test_the_bundle_holds_the_tokenizer_files_options_and_a_card_naming_the_original(imported_dir, marian_dir):
    assert {p.name for p in imported_dir.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "source.spm",
        "target.spm",
        "vocab.json",
        "README.md",
    }
    config = json.loads((imported_dir / "config.json").read_text())
    assert config["format_version"] == 2
    model = config["model"]
    assert (model["activation"], model["positions"], model["output_bias"], model["norm_position"]) == ("silu", "halves", True, "post")
    assert model["bos_id"] == model["pad_id"] == model["vocab_size"] - 1 and model["eos_id"] == 0
    card = (imported_dir / "README.md").read_text()
    assert str(marian_dir) in card and "license: cc-by-4.0" in card and "A test model." in card


def test_the_tokenizer_gives_marians_ids_and_text(imported_dir, reference):
    _, hf_tokenizer = reference
    tokenizer = load_bundle(imported_dir).tokenizer
    ours = tokenizer.encode(SENTENCES)
    assert [ids + [0] for ids in ours] == hf_tokenizer(SENTENCES)["input_ids"]
    unknown = tokenizer.encode(["Ωmega 漢字"])[0]
    assert tokenizer.unk_id in unknown and unknown == hf_tokenizer(["Ωmega 漢字"])["input_ids"][0][:-1]
    targets = tokenizer.encode_target(["I am hungry.", "Where is the station?"])
    assert tokenizer.decode(targets) == ["I am hungry.", "Where is the station?"]
    assert tokenizer.decode(targets) == hf_tokenizer.batch_decode(targets, skip_special_tokens=True)


def test_logits_equal_transformers_to_1e5(imported_dir, reference):
    hf_model, hf_tokenizer = reference
    model = load_bundle(imported_dir).model
    batch = hf_tokenizer(SENTENCES, return_tensors="pt", padding=True)
    src = pad_with_eos(load_bundle(imported_dir).tokenizer.encode(SENTENCES), 0, model.config.pad_id)
    assert torch.equal(src, batch["input_ids"])
    torch.manual_seed(1)
    tgt = torch.cat([torch.full((len(SENTENCES), 1), model.config.bos_id), torch.randint(2, 100, (len(SENTENCES), 9))], dim=1)
    with torch.inference_mode():
        expected = hf_model(**batch, decoder_input_ids=tgt).logits
        for fused in (True, False):  # the fused kernel and the written-out attention
            model.set_fused_attention(fused)
            assert torch.allclose(model(src, tgt), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("beams", [1, 4])
def test_greedy_and_beam_outputs_equal_generate_token_for_token(imported_dir, reference, beams):
    """Beam search with transformers' settings that match xformer's rules: a hypothesis ends when
    EOS ranks within the top `beams` candidates, a sentence ends with `beams` finished ones
    (early_stopping=True), scores are log P / length (EOS counted), padding and <unk> are never
    chosen. Every output ends on its own, before the length cap, where the two differ."""
    hf_model, hf_tokenizer = reference
    bundle = load_bundle(imported_dir)
    model, pad = bundle.model, bundle.model.config.pad_id
    batch = hf_tokenizer(SENTENCES, return_tensors="pt", padding=True)
    generated = hf_model.generate(
        **batch,
        num_beams=beams,
        do_sample=False,
        max_length=100,
        early_stopping=True,
        length_penalty=1.0,
        bad_words_ids=[[pad], [bundle.tokenizer.unk_id]],
    )
    config = DecodeConfig(beam_size=beams, max_len_a=0.0, max_len_b=99, length_penalty=1.0)
    ours = search(model, pad_with_eos(bundle.tokenizer.encode(SENTENCES), 0, pad), config)
    compared = []
    for source, row, hyps in zip(bundle.tokenizer.encode(SENTENCES), generated.tolist(), ours):
        theirs = [t for t in row[1:] if t != pad]  # after the start token, without padding
        assert theirs[-1] == 0 and len(theirs) < 99  # ended by EOS, not by the cap
        _, margin = reference_search(model, source, config)
        if margin >= MIN_MARGIN:  # else a decision is close enough for rounding to flip it on another CPU
            assert list(hyps[0].tokens) + [0] == theirs
            compared.append(len(theirs))
    assert len(compared) >= 12 and max(compared) >= 4  # most sentences, and not only empty outputs
    texts = Translator(bundle).translate(  # the rules `generate` was given above, not the import's defaults
        SENTENCES, beam_size=beams, max_len_a=0.0, max_len_b=99, early_stopping=True, ban_unk=True, renormalize=False
    )
    decoded = hf_tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert sum(a == b for a, b in zip(texts, decoded)) >= len(compared)


def test_an_untied_output_projection_is_imported_too(tmp_path):
    source = make_tiny_marian(tmp_path / "untied", tie=False)
    bundle = load_bundle(import_marian(str(source), tmp_path / "bundle"))
    assert not bundle.model.config.tie_embeddings
    hf_model = transformers.MarianMTModel.from_pretrained(source).eval()
    src = torch.tensor([[5, 6, 7, 0]])
    tgt = torch.tensor([[bundle.model.config.bos_id, 9, 10]])
    with torch.inference_mode():
        assert torch.allclose(bundle.model(src, tgt), hf_model(input_ids=src, decoder_input_ids=tgt).logits, atol=1e-5, rtol=0)


def test_pytorch_model_bin_is_read_with_weights_only(marian_dir, imported_dir, tmp_path):
    from safetensors.torch import load_file

    source = tmp_path / "bin-only"
    shutil.copytree(marian_dir, source)
    torch.save(load_file(str(source / "model.safetensors")), source / "pytorch_model.bin")
    (source / "model.safetensors").unlink()
    bundle = load_bundle(import_marian(str(source), tmp_path / "bundle"))
    expected = load_bundle(imported_dir).model.state_dict()
    assert all(torch.equal(t, expected[name]) for name, t in bundle.model.state_dict().items())

    torch.save({"model.shared.weight": torch.zeros(2), "payload": Path("x")}, source / "pytorch_model.bin")  # a pickled object
    with pytest.raises(ModelLoadError, match="cannot read .*pytorch_model.bin as plain tensors"):
        import_marian(str(source), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def edit(marian_dir: Path, tmp_path: Path, config: dict | None = None, weights=None, files: dict | None = None) -> Path:
    """A copy of the tiny Marian model with config entries, weights or files changed."""
    from safetensors.torch import load_file, save_file

    source = tmp_path / "edited"
    shutil.copytree(marian_dir, source)
    if config:
        values = json.loads((source / "config.json").read_text())
        values.update(config)
        (source / "config.json").write_text(json.dumps(values))
    if weights:
        tensors = load_file(str(source / "model.safetensors"))
        weights(tensors)
        save_file(tensors, str(source / "model.safetensors"))
    for name, text in (files or {}).items():
        (source / name).write_text(text)
    return source


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(config={"model_type": "bart"}), "model_type 'bart', expected 'marian'"),
        (dict(config={"share_encoder_decoder_embeddings": False}), "separate source and target vocabularies"),
        (dict(files={"target_vocab.json": "{}"}), "separate source and target vocabularies"),
        (dict(config={"activation_function": "tanh"}), "activation_function 'tanh'"),
        (dict(weights=lambda t: t.pop("model.encoder.layers.1.fc2.bias")), "'encoder.layers.1.ffn.fc2.bias' is missing"),
        (
            dict(weights=lambda t: t.update({"model.encoder.layers.0.fc1.weight": torch.zeros(3, 3)})),
            "'encoder.layers.0.ffn.fc1.weight' has shape (3, 3)",
        ),
        (
            dict(weights=lambda t: t.update({"model.encoder.layernorm_embedding.weight": torch.zeros(32)})),
            "unexpected tensor 'encoder.layernorm_embedding.weight'",
        ),
        (dict(files={"config.json": "{"}), "corrupt config.json"),
        (dict(files={"vocab.json": "[1, 2]"}), "corrupt vocab.json"),
    ],
)
def test_what_does_not_fit_is_a_one_line_error_naming_it(marian_dir, tmp_path, change, message):
    source = edit(marian_dir, tmp_path, **change)
    result = CliRunner().invoke(app, ["import", str(source), "--out", str(tmp_path / "out")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_a_hub_id_out_of_reach_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    result = CliRunner().invoke(app, ["import", "Helsinki-NLP/opus-mt-de-en", "--out", str(tmp_path / "out")])
    assert_one_line_error(result, "Helsinki-NLP/opus-mt-de-en", "HF_HUB_OFFLINE")


def test_every_command_takes_an_imported_bundle(imported_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["translate", "-m", str(imported_dir), "--greedy"], input="Ich habe Hunger.\nWo ist der Bahnhof?\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    nbest = runner.invoke(app, ["translate", "-m", str(imported_dir), "-b", "3", "--n-best", "2", "--scores"], input="Tom ist hier.\n")
    assert nbest.exit_code == 0 and len(nbest.stdout.splitlines()) == 2, nbest.output
    src, ref = tmp_path / "src.de", tmp_path / "ref.en"
    src.write_text("\n".join(SENTENCES[:4]) + "\n")
    ref.write_text("I am hungry.\nTom is here.\nWhere is it?\nGood day.\n")
    evaluated = runner.invoke(app, ["evaluate", "-m", str(imported_dir), "--src", str(src), "--ref", str(ref), "--json"])
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout.splitlines()[0])["bleu"] >= 0, evaluated.output
    plot = tmp_path / "attention.png"
    drawn = runner.invoke(app, ["translate", "-m", str(imported_dir), "--greedy", "--attention-plot", str(plot)], input="Tom ist hier.\n")
    assert drawn.exit_code == 0 and plot.stat().st_size > 0, drawn.output
    described = runner.invoke(app, ["info", str(imported_dir)])
    assert described.exit_code == 0 and "pieces (source + target SentencePiece)" in described.stdout, described.output


def test_fine_tuning_an_imported_bundle_runs_and_resumes(imported_dir, tmp_path):
    corpus = {side: (CORPUS / f"valid.{side}").read_text(encoding="utf-8").splitlines()[300:340] for side in ("de", "en")}
    for side, lines in corpus.items():
        (tmp_path / f"train.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [
        "train",
        "--init-from",
        str(imported_dir),
        "--src",
        str(tmp_path / "train.de"),
        "--tgt",
        str(tmp_path / "train.en"),
        "--batch-tokens",
        "200",
        "--valid-every",
        "0",
        "--save-every",
        "2",
    ]
    first = CliRunner().invoke(app, [*args, "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert first.exit_code == 0, first.output
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"source.spm", "target.spm", "vocab.json"}
    resumed = CliRunner().invoke(app, [*args, "--max-steps", "4", "--out", str(tmp_path / "run"), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    tuned = load_bundle(tmp_path / "run" / "bundle")
    original = load_bundle(imported_dir)
    assert tuned.model.config == original.model.config
    assert not torch.equal(tuned.model.embedding.weight, original.model.embedding.weight)  # it trained
    assert tuned.tokenizer.digest() == original.tokenizer.digest()
    assert len(Translator(tuned).translate(["Ich habe Hunger."], beam_size=2)) == 1


# ----- each new model option against its reference -----


def test_halves_positions_are_transformers_marian_table():
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    for d_model in (32, 6):
        reference = MarianSinusoidalPositionalEmbedding(50, d_model).create_weight()
        assert torch.allclose(sinusoidal_table(50, d_model, "halves"), reference, atol=1e-6, rtol=0)
        interleaved = sinusoidal_table(50, d_model)
        assert torch.equal(interleaved[:, 0::2], sinusoidal_table(50, d_model, "halves")[:, : d_model // 2])


@pytest.mark.parametrize(
    "activation, reference",
    [("relu", torch.relu), ("silu", lambda x: x * torch.sigmoid(x)), ("gelu", lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)))],
)
def test_feed_forward_activation_against_its_formula(activation, reference):
    torch.manual_seed(0)
    ffn = FeedForward(ModelConfig(d_model=8, h=2, d_ff=16, activation=activation))
    x = torch.randn(2, 3, 8)
    assert torch.allclose(ffn(x), ffn.fc2(reference(ffn.fc1(x))), atol=1e-6)


def test_output_bias_is_added_to_the_logits_and_defaults_off():
    torch.manual_seed(0)
    assert build_model(ModelConfig(vocab_size=20, d_model=8, h=2, d_ff=16, n_encoder_layers=1, n_decoder_layers=1)).output_bias is None
    model = build_model(ModelConfig(vocab_size=20, d_model=8, h=2, d_ff=16, n_encoder_layers=1, n_decoder_layers=1, output_bias=True))
    with torch.no_grad():
        model.output_bias.normal_()
    hidden = torch.randn(2, 3, 8)
    assert torch.allclose(model.project(hidden), F.linear(hidden, model.embedding.weight) + model.output_bias, atol=1e-6)
    assert "output_bias" in model.state_dict()


def test_the_attention_plot_cuts_the_translation_with_the_target_model(imported_dir, tmp_path, monkeypatch):
    import xformer_cli.decoding.attention_plot as attention_plot
    from xformer_cli.decoding.unix_filter import draw_attention

    drawn = {}
    monkeypatch.setattr(
        attention_plot, "plot_attention", lambda weights, src, tgt, path: drawn.update(src=src, tgt=tgt, shape=tuple(weights.shape))
    )
    translator = Translator(load_bundle(imported_dir))
    tokenizer = translator.tokenizer
    assert tokenizer.encode(["the station"]) != tokenizer.encode_target(["the station"])  # the two models cut differently
    draw_attention(translator, "Wo ist der Bahnhof?", "Where is the station?", tmp_path / "a.png", warn=print)
    assert drawn["tgt"] == tokenizer.pieces(tokenizer.encode_target(["Where is the station?"])[0]) + ["</s>"]
    assert drawn["src"] == tokenizer.pieces(tokenizer.encode(["Wo ist der Bahnhof?"])[0]) + ["</s>"]
    assert drawn["shape"] == (len(drawn["tgt"]), len(drawn["src"]))
