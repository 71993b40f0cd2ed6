"""`xformer import` of OPUS-MT models as published: their configurations, checkpoints saved the ways
real ones are, their own decoding defaults, and the target-language tags of multi-target models.

Each fixture is a tiny model built by `transformers` from a published configuration
(tests/bundles/published_marian.py; tests/fixtures/opus-mt-published/README.md). Every import is
compared with transformers: logits to 1e-5, and greedy and beam token ids with `generate` under
the model's own generation config, wherever every decision wins by MIN_MARGIN (the project's rule).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import MIN_MARGIN, assert_one_line_error, reference_search
from published_marian import Saved, make_published, reference
from typer.testing import CliRunner

from xformer_cli.batching import pad_with_eos
from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.bundles.language_codes import model_languages
from xformer_cli.bundles.marian import import_marian
from xformer_cli.cli.app import app
from xformer_cli.decoding.search import search
from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import ConfigError, ModelLoadError

CORPUS = Path(__file__).parents[2] / "models" / "corpus" / "tatoeba"
GERMAN = (CORPUS / "test.de").read_text(encoding="utf-8").splitlines()[:24]
ENGLISH = (CORPUS / "test.en").read_text(encoding="utf-8").splitlines()[:24]

# The ways the checkpoints of each model were found saved (see the fixtures' README).
CASES = {
    # 2020: transformers 3, float16 as the converter wrote it, the sinusoid tables stored, no
    # lm_head, torch's format before 1.6, the generation keys in config.json (no generation_config.json)
    "opus-mt-de-en": Saved(dtype=torch.float16, stored_positions=True, lm_head=False, file="legacy-bin", seed=11),
    # 2023: float32 safetensors with the tied lm_head, generation_config.json beside config.json
    "opus-mt-en-de": Saved(seed=11),
    # tc-big: relu, float16, no lm_head, </s> and <unk> far from 0 and 1 (the published eos_token_id is 43311 of 53017)
    "opus-mt-tc-big-fr-en": Saved(dtype=torch.float16, lm_head=False, file="bin", eos_at=43311 / 53017, unk_at=0.4, seed=31),
}


@pytest.fixture(scope="module", params=list(CASES))
def published(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(name, the fixture as on the Hub, its import)."""
    name = request.param
    folder = make_published(name, tmp_path_factory.mktemp("hub") / name, CASES[name])
    return name, folder, import_marian(str(folder), tmp_path_factory.mktemp("imported") / name)


def sentences(name: str) -> list[str]:
    return ENGLISH if name.startswith("opus-mt-en-") else GERMAN


def test_every_published_layout_imports_with_the_models_own_ids_and_decoding_defaults(published):
    name, folder, imported = published
    config = json.loads((folder / "config.json").read_text())
    bundle = load_bundle(imported)
    c = bundle.model.config
    vocab = bundle.tokenizer.vocab
    assert (c.eos_id, c.unk_id, c.pad_id, c.bos_id) == (vocab["</s>"], vocab["<unk>"], vocab["<pad>"], config["decoder_start_token_id"])
    if name == "opus-mt-tc-big-fr-en":
        assert c.unk_id not in (0, 1) and c.eos_id not in (0, 1) and c.activation == "relu"
    d = bundle.decode
    assert (d.beam_size, d.max_len_a, d.max_len_b, d.length_penalty) == (4, 0.0, 511, 1.0)  # num_beams 4, max_length 512
    assert not d.early_stopping and not d.ban_unk and d.banned_ids == (c.pad_id,)  # bad_words_ids [[pad]]
    assert d.renormalize == (name != "opus-mt-de-en")  # renormalize_logits is in the generation_config.json files only
    assert not d.split_sentences and not d.protect_spans
    expected = {"opus-mt-de-en": ("de", "en"), "opus-mt-en-de": ("en", "de"), "opus-mt-tc-big-fr-en": ("fr", "en")}[name]
    assert (bundle.src_lang, bundle.tgt_lang) == expected  # tc-big's tokenizer_config.json says fra, eng


def test_logits_equal_transformers_to_1e5(published):
    name, folder, imported = published
    hf_model, hf_tokenizer = reference(folder)
    bundle = load_bundle(imported)
    model, texts = bundle.model, sentences(name)
    batch = hf_tokenizer(texts, return_tensors="pt", padding=True)
    src = pad_with_eos(bundle.tokenizer.encode(texts), model.config.eos_id, model.config.pad_id)
    assert torch.equal(src, batch["input_ids"])
    torch.manual_seed(1)
    tgt = torch.cat([torch.full((len(texts), 1), model.config.bos_id), torch.randint(2, 100, (len(texts), 9))], dim=1)
    with torch.inference_mode():
        expected = hf_model(**batch, decoder_input_ids=tgt).logits
        for fused in (True, False):
            model.set_fused_attention(fused)
            assert torch.allclose(model(src, tgt), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("beams", [1, None])
def test_greedy_and_beam_ids_equal_generate_under_the_models_own_generation_config(published, beams):
    """`generate` with nothing but the model's files (beam 4, transformers' stopping rule,
    renormalized scores, <unk> allowed), against xformer's search with the imported defaults."""
    name, folder, imported = published
    hf_model, hf_tokenizer = reference(folder)
    bundle = load_bundle(imported)
    model, pad, texts = bundle.model, bundle.model.config.pad_id, sentences(name)
    config = bundle.decode if beams is None else replace(bundle.decode, beam_size=beams)
    batch = hf_tokenizer(texts, return_tensors="pt", padding=True)
    generated = hf_model.generate(**batch, **({} if beams is None else {"num_beams": beams}))
    ours = search(model, pad_with_eos(bundle.tokenizer.encode(texts), model.config.eos_id, pad), config)
    compared = []
    for source, row, hyps in zip(bundle.tokenizer.encode(texts), generated.tolist(), ours):
        theirs = [t for t in row[1:] if t != pad]
        if len(theirs) >= config.max_len_b:  # a random model repeating a piece up to the cap, where the two end differently
            continue
        assert theirs[-1] == model.config.eos_id  # ended by EOS
        _, margin = reference_search(model, source, config)
        if margin >= MIN_MARGIN:
            assert list(hyps[0].tokens) + [model.config.eos_id] == theirs
            compared.append(len(theirs))
    assert len(compared) >= 5 and max(compared) >= 3  # a good part of the sentences, and outputs of several pieces


def test_translate_with_the_imported_defaults_gives_generates_text(published):
    """The goal of the import: an imported model with default options gives `generate`'s output."""
    name, folder, imported = published
    hf_model, hf_tokenizer = reference(folder)
    bundle = load_bundle(imported)
    texts = sentences(name)
    generated = hf_model.generate(**hf_tokenizer(texts, return_tensors="pt", padding=True))
    decoded = hf_tokenizer.batch_decode(generated, skip_special_tokens=True)
    pad, cap = bundle.model.config.pad_id, bundle.decode.max_len_b
    clear = [
        i
        for i, (ids, row) in enumerate(zip(bundle.tokenizer.encode(texts), generated.tolist()))
        if len([t for t in row[1:] if t != pad]) < cap and reference_search(bundle.model, ids, bundle.decode)[1] >= MIN_MARGIN
    ]
    assert len(clear) >= 5
    ours = Translator(bundle).translate([texts[i] for i in clear])
    assert ours == [decoded[i] for i in clear]


def test_a_stored_table_that_is_not_the_sinusoids_is_refused_even_in_float16(tmp_path):
    folder = make_published("opus-mt-de-en", tmp_path / "hub", CASES["opus-mt-de-en"])
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    table = state["model.encoder.embed_positions.weight"]
    state["model.encoder.embed_positions.weight"] = torch.roll(table, 1, dims=0)  # positions off by one
    torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    with pytest.raises(ModelLoadError, match="'encoder.embed_positions.weight' is not the sinusoidal table"):
        import_marian(str(folder), tmp_path / "out")


@pytest.mark.parametrize(
    "generation, message",
    [
        ({"bad_words_ids": [[5, 6]]}, "bad_words_ids"),
        ({"early_stopping": "never"}, "early_stopping 'never'"),
        ({"do_sample": True}, "do_sample"),
        ({"num_beams": 0}, "beam size"),
    ],
)
def test_a_generation_config_xformer_cannot_follow_is_a_one_line_error(tmp_path, generation, message):
    folder = make_published("opus-mt-en-de", tmp_path / "hub", CASES["opus-mt-en-de"])
    values = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**values, **generation}))
    result = CliRunner().invoke(app, ["import", str(folder), "--out", str(tmp_path / "out")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_an_unk_id_in_config_json_must_match_the_vocabulary(tmp_path):
    folder = make_published("opus-mt-en-de", tmp_path / "hub", CASES["opus-mt-en-de"])
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, "unk_token_id": 7}))
    with pytest.raises(ModelLoadError, match="gives <unk> id 1, config.json's unk_token_id is 7"):
        import_marian(str(folder), tmp_path / "out")


@pytest.mark.parametrize(
    "source, tokenizer_config, card, expected",
    [
        ("Helsinki-NLP/opus-mt-de-en", {}, "", ("de", "en")),
        ("Helsinki-NLP/opus-mt-tc-big-fr-en", {}, "", ("fr", "en")),
        ("Helsinki-NLP/opus-mt-tc-big-en-zle", {}, "", ("en", "zle")),  # a group keeps its code
        ("some/folder", {"source_lang": "deu", "target_lang": "eng"}, "", ("de", "en")),
        ("some/folder", {}, "model-index:\n- results:\n  - task:\n      args: deu-eng\n", ("de", "en")),
        ("Helsinki-NLP/opus-mt-tc-big-fr-en", {"source_lang": "de", "target_lang": "nl"}, "", ("de", "nl")),  # files first
    ],
)
def test_languages_come_from_the_models_files_then_its_name(source, tokenizer_config, card, expected):
    assert model_languages(source, tokenizer_config, card) == expected


# ----- multi-target models: >>xxx<< tags -----

TAGS = (">>deu<<", ">>eng<<", ">>nld<<")


@pytest.fixture(scope="module")
def multi_target(tmp_path_factory) -> tuple[Path, Path]:
    """A model with three target languages (the tc-big configuration, its vocabulary holding three
    tags, as OPUS-MT's multi-target models do), on the Hub and imported."""
    saved = replace(CASES["opus-mt-tc-big-fr-en"], tags=TAGS, seed=32)
    folder = make_published("opus-mt-tc-big-fr-en", tmp_path_factory.mktemp("hub") / "opus-mt-tc-big-de-gmw", saved)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "source_lang": "deu", "target_lang": "gmw"}))
    return folder, import_marian(str(folder), tmp_path_factory.mktemp("imported") / "gmw")


def test_a_leading_tag_is_one_id_as_marian_tokenizer_cuts_it(multi_target):
    folder, imported = multi_target
    _, hf_tokenizer = reference(folder)
    tokenizer = load_bundle(imported).tokenizer
    assert tokenizer.language_tags == {"deu": ">>deu<<", "eng": ">>eng<<", "nld": ">>nld<<"}
    texts = [">>nld<< Ich habe Hunger.", ">>eng<<Wo ist der Bahnhof?", "Tom ist hier."]
    ours = tokenizer.encode(texts)
    assert [ids + [tokenizer.eos_id] for ids in ours] == hf_tokenizer(texts)["input_ids"]
    assert ours[0][0] == tokenizer.vocab[">>nld<<"] and ours[0][1:] == tokenizer.encode(["Ich habe Hunger."])[0]


def test_target_lang_puts_the_tag_before_every_sentence_and_equals_generate(multi_target, monkeypatch):
    folder, imported = multi_target
    hf_model, hf_tokenizer = reference(folder)
    translator = Translator(load_bundle(imported))
    assert translator.target_tag("nl") == translator.target_tag("nld") == ">>nld<<"
    with pytest.raises(ConfigError, match="does not translate into 'fr' .*deu, eng, nld"):
        translator.target_tag("fr")
    texts = [f">>nld<< {text}" for text in GERMAN[:12]]
    generated = hf_model.generate(**hf_tokenizer(texts, return_tensors="pt", padding=True))
    pad, cap, config = translator.model.config.pad_id, translator.decode_config.max_len_b, translator.decode_config
    ended = [t for t, row in zip(texts, generated.tolist()) if len([i for i in row[1:] if i != pad]) < cap]  # not repeating to the cap
    clear = [
        t for t, ids in zip(ended, translator.tokenizer.encode(ended)) if reference_search(translator.model, ids, config)[1] >= MIN_MARGIN
    ]
    assert len(clear) >= 3
    expected = hf_tokenizer.batch_decode(
        hf_model.generate(**hf_tokenizer(clear, return_tensors="pt", padding=True)), skip_special_tokens=True
    )
    assert translator.translate(clear) == expected
    result = CliRunner().invoke(
        app, ["translate", "-m", str(imported), "--target-lang", "nl"], input="\n".join(t[8:] for t in clear) + "\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == expected

    searched = []
    original = Translator.search_ids
    monkeypatch.setattr(
        Translator, "search_ids", lambda self, segments, config: searched.extend(segments) or original(self, segments, config)
    )
    translator.translate([">>nld<< Ich habe Hunger. Wo ist der Bahnhof?"], split_sentences=True)
    nld = translator.tokenizer.vocab[">>nld<<"]
    assert len(searched) == 2 and all(ids[0] == nld and nld not in ids[1:] for ids in searched)


def test_target_lang_errors_in_one_line(multi_target, imported_one_target, tmp_path):
    _, imported = multi_target
    runner = CliRunner()
    assert_one_line_error(
        runner.invoke(app, ["translate", "-m", str(imported), "--target-lang", "xx"], input="Hallo\n"), "'xx'", "deu, eng, nld"
    )
    one = runner.invoke(app, ["translate", "-m", str(imported_one_target), "--target-lang", "en", "--greedy"], input="Hallo\n")
    assert one.exit_code == 0 and len(one.stdout.splitlines()) == 1, one.output  # its own language: accepted
    assert_one_line_error(
        runner.invoke(app, ["translate", "-m", str(imported_one_target), "--target-lang", "nl"], input="Hallo\n"), "'nl'", "(it writes: en)"
    )


@pytest.fixture(scope="module")
def imported_one_target(tmp_path_factory) -> Path:
    folder = make_published("opus-mt-de-en", tmp_path_factory.mktemp("hub") / "opus-mt-de-en", CASES["opus-mt-de-en"])
    return import_marian(str(folder), tmp_path_factory.mktemp("imported") / "de-en")


def test_the_server_offers_each_tagged_target_and_tags_the_texts(multi_target):
    from fastapi.testclient import TestClient

    from xformer_cli.serve.app import create_app
    from xformer_cli.serve.settings import ServeSettings

    _, imported = multi_target
    translator = Translator(load_bundle(imported))
    expected = translator.translate([">>nld<< Ich habe Hunger.", ">>eng<< Ich habe Hunger."])
    with TestClient(create_app(ServeSettings(), [translator])) as client:
        languages = {entry["code"]: entry["targets"] for entry in client.get("/languages").json()}
        assert languages["de"] == ["de", "en", "nl"]
        answers = [client.post("/translate", json={"q": "Ich habe Hunger.", "source": "de", "target": t}).json() for t in ("nl", "en")]
        assert [a["translatedText"] for a in answers] == expected
        refused = client.post("/translate", json={"q": "Hallo", "source": "de", "target": "fr"})
        assert refused.status_code == 400 and "error" in refused.json()
