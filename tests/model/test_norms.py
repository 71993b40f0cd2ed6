import pytest
import torch
import torch.nn.functional as F

from xformer_cli.model import build_model
from xformer_cli.model.config import ModelConfig
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


# ----- the copy task: every norm variant must let a tiny model learn it -----

VOCAB, BODY_LEN, BOS, EOS = 14, 6, 2, 3  # bodies use ids 4..13
TRAIN_BATCH, HELD_OUT = 32, 256  # sequences per training step; in the held-out batch
HELD_OUT_SEED = 12345  # the held-out batch's generator: other sequences than any training batch's


def copy_batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random bodies as (src, tgt_in): src is body + EOS (also the target), tgt_in is BOS + body."""
    body = torch.randint(4, VOCAB, (size, BODY_LEN), generator=generator)
    src = torch.cat([body, torch.full((size, 1), EOS)], dim=1)
    tgt_in = torch.cat([torch.full((size, 1), BOS), body], dim=1)
    return src, tgt_in


def copy_model(norm: str, position: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=VOCAB,
        d_model=32,
        h=2,
        d_ff=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        dropout=0.0,
        max_len=16,
        norm=norm,
        norm_position=position,
    )
    return build_model(config)


def train_copy(model: torch.nn.Module, steps: int, data_seed: int = 1) -> torch.nn.Module:
    """`steps` Adam updates on fresh random batches (teacher forcing, plain cross-entropy), the
    learning rate falling linearly to 0 so that training ends settled, not in a loss spike."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    g = torch.Generator().manual_seed(data_seed)
    model.train()
    for _ in range(steps):
        src, tgt_in = copy_batch(TRAIN_BATCH, g)
        loss = F.cross_entropy(model(src, tgt_in).reshape(-1, VOCAB), src.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


@torch.no_grad()
def greedy_copy_accuracy(model: torch.nn.Module) -> float:
    """Share of the held-out batch's target tokens (body and EOS) that greedy decoding gets right."""
    model.eval()
    src, _ = copy_batch(HELD_OUT, torch.Generator().manual_seed(HELD_OUT_SEED))
    out = torch.full((HELD_OUT, 1), BOS)
    for _ in range(src.size(1)):
        next_token = model(src, out)[:, -1].argmax(dim=-1, keepdim=True)
        out = torch.cat([out, next_token], dim=1)
    return float((out[:, 1:] == src).float().mean())


# Held-out accuracy after COPY_STEPS, measured for all 8 variants on an AMD AVX2 CPU: with torch
# threads 1 (data seeds 1-10), threads 2 and oneDNN off (seeds 1-5 each); other data seeds stand in
# for other CPUs, whose rounding sends training down another path. 160 runs: worst 0.995 (dyt post),
# every other variant >= 0.9978, so the bound 0.95 has a margin of 0.045 (errors 0.5% of 5% allowed).
# With 350 steps the worst was 0.987 and with 300 0.948 (1 thread, seeds 1-5), hence 400 steps:
# about 1.2 s per variant on an idle core.
COPY_STEPS = 400


@pytest.mark.parametrize("position", ["post", "pre"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm", "dyt", "derf"])
def test_every_norm_variant_learns_to_copy(norm, position):
    """Learning means getting it right on sequences never trained on: greedy decoding copies a
    held-out batch with at least 95% of its tokens right."""
    model = train_copy(copy_model(norm, position), COPY_STEPS)
    assert greedy_copy_accuracy(model) >= 0.95
