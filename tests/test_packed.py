import torch
import torch.nn.functional as F

from xformer_cli.model.packed import PackedLinear, output_projection, packable


def test_packed_projection_equals_linear():
    weight = torch.randn(1000, 64)
    assert packable(weight)  # the CPU builds of torch we support ship oneDNN
    project = output_projection(weight)
    assert isinstance(project, PackedLinear)
    for rows in (1, 5, 33):
        x = torch.randn(rows, 64)
        torch.testing.assert_close(project(x), F.linear(x, weight), rtol=1e-5, atol=1e-5)


def test_unpackable_weights_fall_back_to_linear():
    weight = torch.randn(100, 16, dtype=torch.float64)
    assert not packable(weight)
    x = torch.randn(3, 16, dtype=torch.float64)
    assert torch.equal(output_projection(weight)(x), F.linear(x, weight))
    assert torch.equal(output_projection(weight.float(), packed=False)(x.float()), F.linear(x.float(), weight.float()))
