"""`xformer export --to ctranslate2`: CTranslate2 runs the exported model as xformer runs the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import MIN_MARGIN, assert_one_line_error, reference_search
from typer.testing import CliRunner

from xformer_cli.bundles.bundle import Bundle, load_bundle
from xformer_cli.bundles.ctranslate2_export import export_ctranslate2
from xformer_cli.cli.app import app
from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.penalties import max_output_length
from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import ConfigError
from xformer_cli.model.transformer import Transformer
from xformer_cli.shipped import default_model

runner = CliRunner()
# CTranslate2 runs in a process of its own, as a user runs it: its OpenMP runtime and threads stay
# out of the test process, whose later tests time subprocesses.
CT2_TRANSLATE = """
import json, sys
import ctranslate2
folder, compute_type, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
engine = ctranslate2.Translator(folder, device="cpu", compute_type=compute_type, intra_threads=1)
sources = json.loads(sys.stdin.read())
print(json.dumps([r.hypotheses[0] for r in engine.translate_batch(sources, **options)]))
"""


def ct2_translate(folder: Path, sources: list[list[str]], compute_type: str = "default", **options) -> list[list[str]]:
    """CTranslate2's best pieces for each source (a list of pieces), from a fresh process."""
    command = [sys.executable, "-c", CT2_TRANSLATE, str(folder), compute_type, json.dumps(options)]
    done = subprocess.run(command, input=json.dumps(sources), capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# Sentences on which the tiny bundle decides clearly (see tests/decoding/test_search.py).
SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?", "Das ist gut.", "Ich bin müde.", "Danke!"]


def translate_both(bundle: Bundle, exported: Path, sentences: list[str], beam: int) -> list[tuple[list[str], list[str], bool]]:
    """(xformer's best pieces, CTranslate2's, whether xformer's stopped at its length cap) per sentence.
    CTranslate2 decodes as xformer does with unknown pieces off and empty outputs allowed, within
    the model's position table."""
    ours = Translator(bundle, "cpu")
    config = ours.config(beam_size=beam)
    ids = bundle.tokenizer.encode(sentences)
    found = ours.search_ids(ids, config)
    theirs = ct2_translate(
        exported,
        [bundle.tokenizer.pieces(s) for s in ids],
        beam_size=beam,
        disable_unk=True,
        min_decoding_length=0,
        max_decoding_length=bundle.model.config.max_pieces,
    )
    limit = bundle.model.config.max_pieces
    caps = [max_output_length(len(s), config.max_len_a, config.max_len_b, limit) - 1 for s in ids]  # pieces before the forced EOS
    return [(bundle.tokenizer.pieces(h[0].tokens), r, len(h[0].tokens) >= cap) for h, r, cap in zip(found, theirs, caps)]


@pytest.mark.parametrize("beam", [1, 3])
def test_the_tiny_post_norm_bundle_translates_alike(trained_bundle_dir, tmp_path, beam):
    bundle = load_bundle(trained_bundle_dir)
    exported = export_ctranslate2(bundle, tmp_path / "ct2")
    for ours, theirs, capped in translate_both(bundle, exported, SENTENCES, beam):
        if capped:  # xformer stops at its own length cap, CTranslate2 at max_decoding_length: the same start
            assert theirs[: len(ours)] == ours
        else:
            assert theirs == ours


def test_the_shipped_pre_norm_model_translates_alike_greedy_and_beam_5(tmp_path):
    bundle = load_bundle(default_model())
    exported = export_ctranslate2(bundle, tmp_path / "ct2")
    sentences = ["Wie spät ist es?", "Ich habe heute keine Zeit.", "Der Zug nach München hat leider Verspätung.", "Guten Tag!"]
    for beam in (1, 5):
        for ours, theirs, capped in translate_both(bundle, exported, sentences, beam):
            assert not capped and theirs == ours


def test_the_folder_holds_the_model_and_the_tokenizer_and_nothing_half_written(trained_bundle_dir, tmp_path):
    exported = export_ctranslate2(load_bundle(trained_bundle_dir), tmp_path / "ct2", quantization="int8")
    assert {p.name for p in exported.iterdir()} == {"config.json", "model.bin", "shared_vocabulary.json", "spm.model"}
    assert [p.name for p in tmp_path.iterdir()] == ["ct2"]  # the temporary folder was renamed into place
    assert ct2_translate(exported, [["▁Tom"]], "int8", max_decoding_length=10)[0]


def test_only_layernorm_models_export(trained_bundle_dir, tmp_path):
    bundle = load_bundle(trained_bundle_dir)
    rms = replace(bundle, model=Transformer(replace(bundle.model.config, norm="rmsnorm")))
    with pytest.raises(ConfigError, match="only LayerNorm"):
        export_ctranslate2(rms, tmp_path / "ct2")
    assert not list(tmp_path.iterdir())


def test_the_command_exports_and_refuses_bad_requests_in_one_line(trained_bundle_dir, tmp_path):
    out = tmp_path / "ct2"
    result = runner.invoke(app, ["export", str(out), "-m", str(trained_bundle_dir)])
    assert result.exit_code == 0, result.output
    assert (out / "model.bin").is_file() and "wrote a CTranslate2 model (float32)" in result.stderr
    assert_one_line_error(runner.invoke(app, ["export", str(out), "-m", str(trained_bundle_dir)]), "exists")
    assert_one_line_error(runner.invoke(app, ["export", str(tmp_path / "x"), "--to", "onnx"]), "unknown engine 'onnx'")
    assert_one_line_error(runner.invoke(app, ["export", str(tmp_path / "x"), "--quantization", "int4"]), "unknown quantization 'int4'")


def test_an_imported_marian_model_translates_alike(tmp_path):
    """Post-norm, SiLU, positions in halves, an output bias and padding as the start token: every
    Marian choice travels."""
    from test_marian import SENTENCES as MARIAN_SENTENCES
    from test_marian import make_tiny_marian

    from xformer_cli.bundles.marian import import_marian

    imported = load_bundle(import_marian(str(make_tiny_marian(tmp_path / "opus-mt-de-en")), tmp_path / "imported"))
    # xformer's own search rules, which CTranslate2's are (an import's defaults follow transformers')
    bundle = replace(imported, decode=DecodeConfig())
    exported = export_ctranslate2(bundle, tmp_path / "ct2")
    for beam in (1, 3):
        config = Translator(bundle, "cpu").config(beam_size=beam)
        ids = bundle.tokenizer.encode(MARIAN_SENTENCES[:8])
        # A random model has near-ties: only the sentences it decides clearly, so that rounding
        # differences between the two engines (on any CPU) cannot change the pieces.
        clear = [s for s, i in zip(MARIAN_SENTENCES[:8], ids) if reference_search(bundle.model, i, config)[1] >= MIN_MARGIN]
        assert len(clear) >= 4
        for ours, theirs, capped in translate_both(bundle, exported, clear, beam):
            assert theirs[: len(ours)] == ours if capped else theirs == ours
