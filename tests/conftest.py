"""Shared tiny fixtures: a tokenizer, a seeded tiny model trained on nothing, saved as a bundle, and
a stored tiny trained bundle (tests/fixtures/tiny-bundle). Everything here runs offline in well
under a second. No expected output depends on the machine: the trained model is read from disk,
never trained here, and the untrained one is only ever compared with itself within a run.

The CPU settings the suite runs under come from the environment, so that other CPUs' numerics can
be emulated on one machine:

    XFORMER_TEST_THREADS=2 python -m pytest    # torch threads (default 1)
    XFORMER_TEST_ONEDNN=0 python -m pytest     # torch.backends.mkldnn.enabled = False (default on)
"""

from __future__ import annotations

import atexit
import importlib.util
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from xformer_cli.bundles.bundle import Bundle, save_bundle
from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.penalties import length_normalized, max_output_length
from xformer_cli.decoding.search import Hypothesis, sentence_uniforms
from xformer_cli.decoding.translator import Translation, Translator
from xformer_cli.model import build_model
from xformer_cli.model.config import preset
from xformer_cli.text.files import read_lines
from xformer_cli.text.spans import restore
from xformer_cli.text.tokenizer import train_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"

# Tests must never reach the network, and run on 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Training in tests encodes corpora into a cache of its own, never the user's ~/.cache/xformer.
TEST_CACHE = tempfile.mkdtemp(prefix="xformer-test-cache-")
os.environ.setdefault("XFORMER_CACHE", TEST_CACHE)
atexit.register(shutil.rmtree, TEST_CACHE, True)
THREADS = int(os.environ.get("XFORMER_TEST_THREADS", "1"))  # tiny models: one thread is fastest and leaves a core free
ONEDNN = os.environ.get("XFORMER_TEST_ONEDNN", "1") != "0"


def apply_cpu_settings() -> None:
    """Put torch in the CPU settings chosen from the environment."""
    torch.set_num_threads(THREADS)
    torch.backends.mkldnn.enabled = ONEDNN


apply_cpu_settings()


@pytest.fixture(autouse=True)
def cpu_settings() -> None:
    """Every test starts in the chosen settings: some code under test changes the thread count
    (`translate --threads`, the trainer's `threads`), and that must not carry into the next test.
    (Subprocesses the tests start keep torch's own defaults.)"""
    apply_cpu_settings()


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
def trained_bundle_dir() -> Path:
    """A tiny model trained briefly on the fixture corpus (it has learned to stop), as a bundle.

    Stored, not trained here: training follows the CPU's float kernels, so weights trained at test
    time differ from machine to machine, and so would every golden output. Tests must only read
    this folder (copy it to change it). Remade by tests/fixtures/make_tiny_bundle.py."""
    return FIXTURES / "tiny-bundle"


# ----- When may decoded tokens be compared exactly? -----

# Scores are float32 log-probabilities summed over the output and divided by its length. With
# fixed weights they still differ between CPUs (vector width, FMA), thread counts, oneDNN on or off,
# batch shapes and code paths (cached or full decoding), in the last bits only: the largest
# difference measured on the stored bundle, over 6 sentences at beams 1 to 5 in all of these
# settings, was 9.5e-7 (4 float32 steps at a score of -2). SCORE_TOL is ten times that; a change to
# the model or search math moves scores by far more.
SCORE_TOL = 1e-5
# Token ids are compared exactly only where every decision of the search beats its runner-up by at
# least this much: 100 times the tolerance (1000 times the largest rounding difference measured),
# so no rounding can flip a decision. `reference_search` measures these margins.
MIN_MARGIN = 100 * SCORE_TOL


@torch.inference_mode()
def ranked_extensions(
    model, src_ids: list[int], beams: list[tuple[tuple[int, ...], float]], n: int, eos_only: bool, config: DecodeConfig = DecodeConfig()
) -> list[tuple[float, tuple[int, ...]]]:
    """The `n` best one-token extensions (cumulative log-prob, prefix + token) of the `beams`
    (prefix, cumulative log-prob) of one source, best first; each prefix decoded in full, no cache.
    The config's banned ids are never chosen, and its `renormalize` log-softmaxes again after."""
    c = model.config
    src = torch.tensor([[*src_ids, c.eos_id]] * len(beams))
    tgt = torch.tensor([[c.bos_id, *prefix] for prefix, _ in beams])
    lp = model(src, tgt)[:, -1].float().log_softmax(dim=-1)  # (beams, V)
    lp[:, [c.pad_id, c.bos_id, *([c.unk_id] if config.ban_unk else []), *config.banned_ids]] = float("-inf")  # never chosen
    if eos_only:  # at the length cap only EOS may follow
        lp[:, : c.eos_id] = lp[:, c.eos_id + 1 :] = float("-inf")
    if config.renormalize:
        lp = lp.log_softmax(dim=-1)
    total = (lp + torch.tensor([score for _, score in beams]).unsqueeze(1)).flatten()
    values, index = total.topk(min(n, total.numel()))
    vocab = lp.size(1)
    return [(v, beams[i // vocab][0] + (i % vocab,)) for v, i in zip(values.tolist(), index.tolist()) if math.isfinite(v)]


def step_margin(ranked: list[tuple[float, tuple[int, ...]]], k: int, eos_id: int) -> float:
    """The smallest score change that would alter what a beam step decides: which EOS candidates
    finish (an EOS beside another candidate within the top k + 1) and which k candidates that are
    not EOS go on (the k-th of them against the (k + 1)-th)."""
    scores = [score for score, _ in ranked]
    is_eos = [prefix[-1] == eos_id for _, prefix in ranked]
    gaps = [scores[i] - scores[i + 1] for i in range(min(k, len(ranked) - 1)) if is_eos[i] or is_eos[i + 1]]
    going_on = [score for score, eos in zip(scores, is_eos) if not eos]
    if len(going_on) > k:
        gaps.append(going_on[k - 1] - going_on[k])
    return min(gaps, default=math.inf)


def reference_search(model, src_ids: list[int], config: DecodeConfig) -> tuple[list[Hypothesis], float]:
    """Beam search (greedy for beam 1) of one source written plainly, by the rules of
    xformer_cli.decoding.search, with the smallest margin of any decision it took: the gap between a
    choice and its runner-up, at every step and in the final ranking (and, without early stopping,
    in each test of whether to stop and of which finished hypotheses to keep). Returns (n best, margin)."""
    c, k = model.config, config.beam_size
    max_len = max_output_length(len(src_ids), config.max_len_a, config.max_len_b, c.max_pieces)
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    finished: list[Hypothesis] = []
    margin = math.inf
    for step in range(1, max_len + 1):
        ranked = ranked_extensions(model, src_ids, beams, 2 * k + 1, step == max_len, config)
        margin = min(margin, step_margin(ranked, k, c.eos_id))
        for log_prob, prefix in ranked[:k]:
            if prefix[-1] == c.eos_id and (len(finished) < k or not config.early_stopping):
                finished.append(Hypothesis(prefix[:-1], length_normalized(log_prob, len(prefix), config.length_penalty), log_prob))
        if not config.early_stopping and len(finished) > k:  # the best k stay
            finished.sort(key=lambda h: -h.score)
            margin = min(margin, finished[k - 1].score - finished[k].score)
            del finished[k:]
        beams = [(prefix, log_prob) for log_prob, prefix in ranked if prefix[-1] != c.eos_id][:k]
        if len(finished) >= k and beams and not config.early_stopping:
            best = length_normalized(beams[0][1], step, config.length_penalty)
            worst = min(h.score for h in finished)
            margin = min(margin, abs(best - worst))
            if best > worst:
                continue
        if len(finished) >= k or not beams:
            break
    finished.sort(key=lambda h: -h.score)
    ranking = [a.score - b.score for a, b in zip(finished[: config.n_best], finished[1:])]
    return finished[: config.n_best], min([margin, *ranking])


@torch.inference_mode()
def reference_sample(model, src_ids: list[int], config: DecodeConfig) -> tuple[Hypothesis, float]:
    """Sampling of one source written plainly, by the rules of xformer_cli.decoding.search: every prefix
    decoded in full, the weights p ** (1 / T) of the top k computed from probabilities, and the
    token found by walking the cumulative weights up to u * total, with the sentence's uniforms.

    Returns (hypothesis, margin). The margin is the smallest change of a log-probability that
    could alter a draw: the distance of u * total from the edges of the chosen token's share, as
    a fraction of the total, times T (a log-prob change d moves the weights by a factor
    exp(d / T)); and with top k, the gap between the k-th and (k + 1)-th log-probability.
    Like reference_search's, it must be at least MIN_MARGIN for drawn ids to be compared exactly."""
    c, t = model.config, config.temperature
    max_len = max_output_length(len(src_ids), config.max_len_a, config.max_len_b, c.max_pieces)
    uniforms = sentence_uniforms(config.seed, [*src_ids, c.eos_id], max_len).tolist()
    src = torch.tensor([[*src_ids, c.eos_id]])
    prefix: list[int] = []
    log_prob, margin = 0.0, math.inf
    for step in range(1, max_len + 1):
        lp = model(src, torch.tensor([[c.bos_id, *prefix]]))[0, -1].float().log_softmax(dim=-1).tolist()
        for banned in (c.pad_id, c.bos_id, c.unk_id):
            lp[banned] = -math.inf
        if step == max_len:  # at the length cap only EOS may follow
            lp = [v if i == c.eos_id else -math.inf for i, v in enumerate(lp)]
        ranked = sorted(lp, reverse=True)
        k = config.sample_topk if 0 < config.sample_topk < len(lp) else len(lp)
        if k < len(lp) and math.isfinite(ranked[k]):
            margin = min(margin, ranked[k - 1] - ranked[k])
        weights = [math.exp(v) ** (1 / t) if v >= ranked[k - 1] else 0.0 for v in lp]
        total = sum(weights)
        target, below = uniforms[step - 1] * total, 0.0
        for token, weight in enumerate(weights):  # noqa: B007  the token drawn is the one the loop stops at
            if below + weight > target:
                break
            below += weight
        margin = min(margin, t * min(target - below, below + weight - target) / total)
        log_prob += lp[token]  # the model's own log-probability, untempered
        if token == c.eos_id:
            break
        prefix.append(token)
    return Hypothesis(tuple(prefix), length_normalized(log_prob, len(prefix) + 1, config.length_penalty), log_prob), margin


# The formats' structure tests (tests/documents/): a translator whose output a test can predict.


class Shouting(Translator):
    """The tiny bundle with a "translation" a test can predict: each sentence in capitals, word
    for word (spans and atoms held back and put back as for a real one). Its attention, used for
    the alignment of tags, is the tiny model's own. For the formats' structure, which must hold
    whatever the model writes."""

    def _translate_sentences(self, sentences, lines, config, warn):
        by_line = [[] for _ in range(lines)]
        for line, masked in sentences:
            by_line[line].append(restore(masked.text.upper(), masked))
        return [[Translation(" ".join(parts), 0.0)] * config.n_best for parts in by_line]


@pytest.fixture(scope="session")
def shouting(trained_bundle_dir):
    torch.set_num_threads(1)
    translator = Shouting.load(str(trained_bundle_dir), device="cpu")
    return translator


def word_for_word(pairs, translator, heads=()):
    """An alignment for Shouting's translations: target word i is source word i."""
    result = {}
    for source, target in pairs:
        n_src, n_tgt = max(len(source.split()), 1), max(len(target.split()), 1)
        result[source, target] = (
            torch.eye(n_tgt, n_src)
            if n_tgt <= n_src
            else torch.eye(n_tgt, n_src)
            + torch.nn.functional.one_hot(torch.full((n_tgt,), n_src - 1), n_src) * (torch.arange(n_tgt) >= n_src).unsqueeze(1)
        )
    return result


@pytest.fixture
def shouting_aligned(shouting, monkeypatch):
    """Shouting, with its tags aligned word for word (the tiny model's attention is noise)."""
    monkeypatch.setattr("xformer_cli.documents.blocks.align_pairs", word_for_word)
    return shouting


# The server's tests (tests/serve/): the tiny bundle's translator, an oracle, and a real `xformer
# serve` in a subprocess on a free port (for LibreTranslate's client, curl and Chromium).


@pytest.fixture
def serve_translator(trained_bundle_dir):
    """The tiny bundle, one worker (closed after the test)."""
    with Translator.load(str(trained_bundle_dir), device="cpu") as loaded:
        yield loaded


@pytest.fixture(scope="session")
def reference(trained_bundle_dir) -> Translator:
    """A second translator of the tiny bundle, outside any server: the oracle of the answers."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


@pytest.fixture(scope="session")
def live_url(trained_bundle_dir):
    """The base URL of `xformer serve -m tests/fixtures/tiny-bundle` running in a subprocess."""
    sys.path.insert(0, str(Path(__file__).parent / "serve"))
    from live_server import start_server, stop_server

    process, url = start_server("-m", str(trained_bundle_dir))
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture
def corpus_cache(tmp_path, monkeypatch) -> Path:
    """The test encodes into a corpus cache of its own (subprocesses inherit it through the environment)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XFORMER_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def script():
    """A loader: script("backtranslate") is scripts/backtranslate.py imported as a module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
