import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from xformer_cli.bundles.bundle import load_bundle, save_bundle
from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import ModelLoadError

SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?"]


def test_bundle_has_the_four_files_and_a_format_version(bundle_dir):
    assert {p.name for p in bundle_dir.iterdir()} >= {"config.json", "model.safetensors", "spm.model"}
    config = json.loads((bundle_dir / "config.json").read_text())
    assert config["format_version"] == 2
    assert config["model"]["pad_id"] == 0 and config["model"]["eos_id"] == 3
    assert (config["src_lang"], config["tgt_lang"]) == ("de", "en")


def test_saved_and_loaded_bundle_translates_identically(tiny_bundle, bundle_dir):
    """Exact on any CPU, though the seeded model is untrained and decides by slim margins: the loaded
    weights are bit-identical to the saved ones (asserted below) and the same batch runs through the
    same kernels in this process, so every float, and so every choice of the search, is the same."""
    before = Translator(tiny_bundle).translate(SENTENCES)
    loaded = load_bundle(bundle_dir)
    assert Translator(loaded).translate(SENTENCES) == before
    for name, tensor in tiny_bundle.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)


def test_fp16_bundle_loads_as_float32(tiny_bundle, tmp_path):
    directory = save_bundle(tiny_bundle, tmp_path / "half", dtype=torch.float16)
    assert load_file(str(directory / "model.safetensors"))["embedding.weight"].dtype == torch.float16
    loaded = load_bundle(directory)
    assert loaded.model.embedding.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.model.embedding.weight, tiny_bundle.model.embedding.weight, atol=1e-3, rtol=1e-3)


def hub_cache_with(bundle_dir, cache, repo_id="xformer-tests/tiny-de-en", commit="0" * 40):
    """Lay out a Hub cache the way huggingface_hub does, with its own helpers."""
    from huggingface_hub.file_download import _cache_commit_hash_for_specific_revision, _create_symlink, repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    for file in bundle_dir.iterdir():
        blob = storage / "blobs" / f"blob-{file.name}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, blob)
        snapshot = storage / "snapshots" / commit / file.name
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(snapshot))
    _cache_commit_hash_for_specific_revision(str(storage), "main", commit)
    return repo_id


def test_bundle_from_an_offline_hub_cache_gives_identical_outputs(bundle_dir, tmp_path, monkeypatch):
    """Exact for the reason above: the same files give the same weights and the same computation."""
    cache = tmp_path / "hub"
    repo_id = hub_cache_with(bundle_dir, cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    from_hub = load_bundle(repo_id)
    assert from_hub.path.parts[-2] == "snapshots"
    assert Translator(from_hub).translate(SENTENCES) == Translator(load_bundle(bundle_dir)).translate(SENTENCES)
    with pytest.raises(ModelLoadError, match="not in the local Hub cache"):
        load_bundle("xformer-tests/no-such-model")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="model not found"):
        load_bundle(tmp_path / "nowhere")


def corrupted_copy(bundle_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    return copy


def test_corrupt_weights_are_a_clear_error(bundle_dir, tmp_path):
    copy = corrupted_copy(bundle_dir, tmp_path)
    (copy / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="corrupt weights file"):
        load_bundle(copy)


def test_missing_and_unexpected_tensors_are_named(bundle_dir, tmp_path):
    copy = corrupted_copy(bundle_dir, tmp_path)
    tensors = load_file(str(copy / "model.safetensors"))
    removed = tensors.pop("decoder.layers.0.fc1.weight" if "decoder.layers.0.fc1.weight" in tensors else "decoder.layers.0.ffn.fc1.weight")
    save_file(tensors, str(copy / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="ffn.fc1.weight' is missing"):
        load_bundle(copy)
    tensors["decoder.layers.0.ffn.fc1.weight"] = removed
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(copy / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="unexpected tensor 'extra.weight'"):
        load_bundle(copy)


def test_weights_that_do_not_match_the_config_are_an_error(bundle_dir, tmp_path):
    copy = corrupted_copy(bundle_dir, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["model"]["d_ff"] = 128
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="has shape .* expected"):
        load_bundle(copy)


def test_loading_reads_no_pickle(bundle_dir, tmp_path, monkeypatch):
    copy = corrupted_copy(bundle_dir, tmp_path)
    (copy / "pytorch_model.bin").write_bytes(b"a pickle that must never be read")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    load_bundle(copy)


def test_the_tag_id_travels_in_config_json_and_must_match_the_tokenizer(tokenizer, trained_bundle_dir, tmp_path):
    from conftest import make_bundle

    old = load_bundle(trained_bundle_dir)  # its config.json predates tag_id
    assert "tag_id" not in json.loads((trained_bundle_dir / "config.json").read_text())["model"]
    assert old.model.config.tag_id == -1 and old.tokenizer.tag_id is None
    tagged = save_bundle(make_bundle(tokenizer, tag_id=tokenizer.tag_id), tmp_path / "tagged")
    assert json.loads((tagged / "config.json").read_text())["model"]["tag_id"] == tokenizer.tag_id == 4
    assert load_bundle(tagged).model.config.tag_id == 4
    wrong = tmp_path / "wrong"
    shutil.copytree(trained_bundle_dir, wrong)
    config = json.loads((wrong / "config.json").read_text())
    config["model"]["tag_id"] = 4
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="tokenizer and model disagree: tag_id 4 in config.json, but spm.model has no <bt> piece"):
        load_bundle(wrong)
