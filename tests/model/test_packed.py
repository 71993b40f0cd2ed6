import pytest
import torch
import torch.nn.functional as F

from xformer_cli.decoding.translator import Translator
from xformer_cli.model.packed import PackedLinear, output_projection, packable


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
