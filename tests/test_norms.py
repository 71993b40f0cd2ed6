import pytest
import torch
import torch.nn.functional as F

from xformer_cli.config import ModelConfig
from xformer_cli.model import build_model
from xformer_cli.model.norms import Derf, DyT, make_norm


def test_dyt_and_derf_follow_their_formulas():
    x = torch.randn(4, 8)
    dyt, derf = DyT(8), Derf(8)
    with torch.no_grad():
        dyt.weight.fill_(2.0), dyt.bias.fill_(0.5), dyt.alpha.fill_(0.7)
        derf.weight.fill_(2.0), derf.bias.fill_(0.5), derf.alpha.fill_(0.7), derf.shift.fill_(0.1)
    torch.testing.assert_close(dyt(x), 2.0 * torch.tanh(0.7 * x) + 0.5)
    torch.testing.assert_close(derf(x), 2.0 * torch.erf(0.7 * x + 0.1) + 0.5)


def test_rmsnorm_has_unit_root_mean_square():
    y = make_norm("rmsnorm", 16)(torch.randn(3, 16) * 5)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3), atol=1e-3, rtol=1e-3)


def copy_task_loss(norm: str, position: str, steps: int = 400) -> float:
    """Train a tiny model to copy random sequences; return the final (unsmoothed) loss."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=14, d_model=32, h=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0, max_len=16, norm=norm, norm_position=position)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        body = torch.randint(4, 14, (32, 6), generator=g)
        src = torch.cat([body, torch.full((32, 1), 3)], dim=1)  # ends in EOS
        tgt_in = torch.cat([torch.full((32, 1), 2), body], dim=1)  # BOS + body
        tgt_out = src
        loss = F.cross_entropy(model(src, tgt_in).reshape(-1, 14), tgt_out.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize("position", ["post", "pre"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm", "dyt", "derf"])
def test_every_norm_variant_learns_to_copy(norm, position):
    assert copy_task_loss(norm, position) < 0.05
