"""Shared tiny fixtures: a tokenizer and a seeded tiny model trained on nothing (for search and
CLI tests) saved as a bundle. Everything here runs offline in well under a second."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from xformer_cli.bundle import Bundle, save_bundle
from xformer_cli.config import DecodeConfig, preset
from xformer_cli.data import read_lines
from xformer_cli.model import build_model
from xformer_cli.tokenizer import train_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"

# Tests must never reach the network, and run on 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves a core free


def assert_one_line_error(result, *fragments: str) -> str:
    """A CLI result that failed with status 1 and one `error:` line on stderr holding each fragment."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def tiny_corpus() -> tuple[Path, Path]:
    return FIXTURES / "tiny.de", FIXTURES / "tiny.en"


@pytest.fixture(scope="session")
def tokenizer(tiny_corpus):
    src, tgt = tiny_corpus
    return train_tokenizer([*read_lines(src), *read_lines(tgt)], vocab_size=400)


def make_bundle(tokenizer, seed: int = 0, **overrides) -> Bundle:
    torch.manual_seed(seed)
    model = build_model(preset("tiny", vocab_size=tokenizer.vocab_size, max_len=64, **overrides)).eval()
    return Bundle(model, tokenizer, DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=5))


@pytest.fixture(scope="session")
def tiny_bundle(tokenizer) -> Bundle:
    return make_bundle(tokenizer)


@pytest.fixture(scope="session")
def bundle_dir(tiny_bundle, tmp_path_factory) -> Path:
    return save_bundle(tiny_bundle, tmp_path_factory.mktemp("bundle") / "tiny-de-en")


@pytest.fixture(scope="session")
def trained_bundle_dir(tiny_corpus, tmp_path_factory) -> Path:
    """A tiny model trained briefly on the fixture corpus (it has learned to stop), as a bundle."""
    from xformer_cli.config import TrainConfig
    from xformer_cli.train import Trainer

    src, tgt = tiny_corpus
    config = TrainConfig(
        src=str(src), tgt=str(tgt), max_steps=120, batch_tokens=600, lr=3e-3, warmup=30, valid_every=0,
        save_every=1000, log_every=1000, threads=1,
    )
    out = tmp_path_factory.mktemp("train") / "run"
    return Trainer(preset("tiny", vocab_size=500, max_len=64, dropout=0.0), config, out,
                   decode=DecodeConfig(beam_size=3, max_len_a=1.5, max_len_b=5)).run()
