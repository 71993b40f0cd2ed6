import pytest
import torch
import torch.nn.functional as F

from xformer_cli.bundle import load_bundle
from xformer_cli.model.packed import PackedLinear, PackedLinearLayer, output_projection, packable, unpack_linears
from xformer_cli.translator import Translator

from conftest import FIXTURES


@pytest.fixture
def onednn(monkeypatch):
    """onednn(True/False): switch oneDNN on or off for this test (XFORMER_TEST_ONEDNN sets the rest)."""
    return lambda enabled: monkeypatch.setattr(torch.backends.mkldnn, "enabled", enabled)


def test_packed_projection_equals_linear(onednn):
    onednn(True)
    weight = torch.randn(1000, 64)
    assert packable(weight)  # the CPU builds of torch we support ship oneDNN
    project = output_projection(weight)
    assert isinstance(project, PackedLinear)
    for rows in (1, 5, 33):
        x = torch.randn(rows, 64)
        torch.testing.assert_close(project(x), F.linear(x, weight), rtol=1e-5, atol=1e-5)


def test_with_onednn_switched_off_the_projection_falls_back_to_linear(onednn, tiny_bundle):
    onednn(False)
    weight = torch.randn(1000, 64)
    assert not packable(weight)
    project = output_projection(weight)
    assert not isinstance(project, PackedLinear)
    x = torch.randn(5, 64)
    assert torch.equal(project(x), F.linear(x, weight))
    assert not isinstance(Translator(tiny_bundle).project, PackedLinear)  # what decoding uses
    onednn(True)
    assert isinstance(Translator(tiny_bundle).project, PackedLinear)


def test_unpackable_weights_fall_back_to_linear():
    weight = torch.randn(100, 16, dtype=torch.float64)
    assert not packable(weight)
    x = torch.randn(3, 16, dtype=torch.float64)
    assert torch.equal(output_projection(weight)(x), F.linear(x, weight))
    assert torch.equal(output_projection(weight.float(), packed=False)(x.float()), F.linear(x.float(), weight.float()))


@pytest.mark.parametrize("enabled", [True, False])
def test_the_projection_adds_the_output_bias_packed_or_not(onednn, enabled):
    onednn(enabled)
    weight, bias = torch.randn(1000, 64), torch.randn(1000)
    project = output_projection(weight, bias)
    assert isinstance(project, PackedLinear) == enabled
    for rows in (1, 5):
        x = torch.randn(rows, 64)
        torch.testing.assert_close(project(x), F.linear(x, weight) + bias, rtol=1e-5, atol=1e-5)


def test_a_packed_linear_layer_is_the_same_function_with_the_same_parameters(onednn):
    onednn(True)
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    layer = PackedLinearLayer(linear)
    assert layer.weight is linear.weight and layer.bias is linear.bias  # shared, not copied
    assert layer.state_dict().keys() == linear.state_dict().keys()
    for rows in (1, 5, 33):
        x = torch.randn(rows, 64)
        torch.testing.assert_close(layer(x), linear(x), rtol=1e-5, atol=1e-5)
    plain = layer.unpacked()
    assert type(plain) is torch.nn.Linear and plain.weight is linear.weight
    assert torch.equal(plain(x), linear(x))


def decoder_linears(model) -> list[torch.nn.Module]:
    return [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("enabled", [True, False])
def test_loading_for_the_cpu_packs_the_decoder_only_where_onednn_serves(onednn, trained_bundle_dir, enabled):
    onednn(enabled)
    translator = Translator.load(str(trained_bundle_dir), device="cpu")
    assert decoder_linears(translator.model)
    assert all(isinstance(m, PackedLinearLayer) == enabled for m in decoder_linears(translator.model))
    assert not any(isinstance(m, PackedLinearLayer) for m in translator.model.encoder.modules())  # many rows a pass: left as is
    assert translator.model.state_dict().keys() == load_bundle(trained_bundle_dir).model.state_dict().keys()


@pytest.mark.parametrize("beam", [1, 4])
def test_a_packed_decoder_finds_the_same_hypotheses(onednn, trained_bundle_dir, beam):
    onednn(True)
    texts = [line.strip() for line in (FIXTURES / "tiny.de").read_text(encoding="utf-8").splitlines()[:12]]
    translator = Translator.load(str(trained_bundle_dir), device="cpu")
    config = translator.config(beam_size=beam, n_best=beam)
    packed = translator.translate_nbest(texts, config)
    unpack_linears(translator.model)
    assert not any(isinstance(m, PackedLinearLayer) for m in translator.model.modules())
    plain = translator.translate_nbest(texts, config)
    assert [[t.text for t in n] for n in packed] == [[t.text for t in n] for n in plain]
    assert [t.score for n in packed for t in n] == pytest.approx([t.score for n in plain for t in n], abs=1e-4)


def test_int8_quantization_replaces_the_packed_decoder_layers(onednn, trained_bundle_dir):
    onednn(True)
    translator = Translator.load(str(trained_bundle_dir), device="cpu")
    translator.quantize("int8")  # after loading, from the packed model
    quantized = Translator.load(str(trained_bundle_dir), device="cpu", quantize="int8")
    for t in (translator, quantized):
        assert not any(isinstance(m, (torch.nn.Linear, PackedLinearLayer)) for m in t.model.decoder.modules())
    texts = ["Ich habe Hunger.", "Tom ist hier."]
    assert translator.translate(texts) == quantized.translate(texts)
