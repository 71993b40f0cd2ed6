"""Greedy search, sampling and beam search over the model's `encode`/`decode`, batched, with the
key/value cache.

Rules learned by fairseq and kept here: padding, BOS and UNK are never selected; EOS is forced at
the maximum length; beam search keeps 2×beam candidates so finished hypotheses never starve the
beam; the cache is reordered with the beam; finished sentences leave the batch. Three options
give transformers' rules instead, for imported models (`DecodeConfig`): UNK allowed, the
log-probabilities renormalized after banning, and a sentence that goes on until no running
hypothesis can beat its finished ones (`early_stopping` False). Given a lexical shortlist
(`shortlist.py`), greedy and beam search score only each sentence's candidate pieces.

Sampling draws each next piece from the model's distribution, sharpened or flattened by a
temperature and cut to the top k pieces. Its randomness belongs to the sentence, not the batch:
a sentence's draws are uniforms from a generator seeded by (seed, its source piece ids), taken by
inverse transform, one per output position. So a sample does not depend on batch size, batch
order or the other lines of the input, and a sentence that occurs twice is sampled the same way
twice (draw again with another seed). A sampled hypothesis's log_prob is the model's own
log-probability of its pieces (untempered, over the whole vocabulary), as greedy and beam search
report it, so scores of all three compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.penalties import length_normalized, max_output_length
from xformer_cli.decoding.shortlist import Restriction
from xformer_cli.decoding.source_attention import History, Matrix
from xformer_cli.model.decoder import DecoderState
from xformer_cli.model.transformer import Transformer

Projection = Callable[[Tensor], Tensor]  # decoder states (B, d_model) -> logits (B, V)
# Chooses each alive row's next piece: (log-probs (B_alive, V), original rows (B_alive,), step) -> ids (B_alive,)
Picker = Callable[[Tensor, Tensor, int], Tensor]


@dataclass(frozen=True)
class Hypothesis:
    """One translation: its piece ids (no BOS/EOS), length-normalized score and raw log-probability;
    with `DecodeConfig.source_attention`, the attention over the source of each step that chose a
    piece, EOS included (`source_attention.History`)."""

    tokens: tuple[int, ...]
    score: float
    log_prob: float
    attention: Matrix | None = field(default=None, compare=False)


def _banned(model: Transformer, config: DecodeConfig, device: torch.device) -> Tensor:
    """Ids never chosen: padding, BOS, the tag piece of synthetic sources (where there is one),
    UNK unless the config allows it, and the config's own banned ids."""
    c = model.config
    ids = [c.pad_id, c.bos_id] + ([c.unk_id] if config.ban_unk else []) + ([c.tag_id] if c.tag_id >= 0 else [])
    return torch.tensor(sorted(set(ids) | set(config.banned_ids)), device=device)


def _eos_only(model: Transformer, device: torch.device) -> Tensor:
    """Added to the log-probabilities of a row at its maximum length: only EOS stays finite. Shape (V,)."""
    eos_only = torch.full((model.config.vocab_size,), float("-inf"), device=device)
    eos_only[model.config.eos_id] = 0.0
    return eos_only


def _step_log_probs(
    model: Transformer,
    project: Projection,
    tokens: Tensor,
    state: DecoderState,
    shortlist: Restriction | None,
    alive: Tensor,
    k: int = 1,
) -> Tensor:
    """Log-probabilities of the next token after `tokens` (B, 1), over the whole vocabulary or
    over the `shortlist` of each row's sentence (the rows: `k` for each of the `alive` sentences,
    numbered as in the original batch). Shape -> (B, V)."""
    hidden = model.decode(tokens, state, incremental=True)[:, -1]  # (B, d_model)
    if shortlist is not None:
        return shortlist.log_probs(hidden, alive.repeat_interleave(k) if k > 1 else alive)
    return project(hidden).float().log_softmax(dim=-1)  # (B, V)


def _renormalized(lp: Tensor, config: DecodeConfig) -> Tensor:
    """lp (R, V) log-softmaxed again after ids were banned, where the config says so."""
    return lp.log_softmax(dim=-1) if config.renormalize else lp


def ban_repeats(lp: Tensor, generated: Tensor, n: int) -> Tensor:
    """Set to -inf, in place, the log-probability of every piece that would complete an n-gram
    already in its row of `generated` (fairseq's --no-repeat-ngram-size): rows whose last n-1
    pieces began an n-gram before may not end it the same way. lp: (R, V); generated: (R, t)
    pieces so far, without BOS. Returns lp."""
    t = generated.size(1)
    if n <= 0 or t < n:
        return lp
    windows = generated.unfold(1, n, 1)  # (R, t - n + 1, n): every n-gram so far
    last = generated[:, t - n + 1 :]  # (R, n - 1): the start of the n-gram the next piece ends
    seen = (windows[:, :, :-1] == last.unsqueeze(1)).all(dim=2)  # (R, t - n + 1)
    rows, starts = seen.nonzero(as_tuple=True)
    lp[rows, windows[rows, starts, -1]] = float("-inf")
    return lp


def _max_lengths(model: Transformer, src: Tensor, config: DecodeConfig) -> list[int]:
    src_lens = (src != model.config.pad_id).sum(dim=1).tolist()
    return [max_output_length(n - 1, config.max_len_a, config.max_len_b, model.config.max_pieces) for n in src_lens]


@torch.inference_mode()
def greedy_search(
    model: Transformer, src: Tensor, config: DecodeConfig, project: Projection | None = None, shortlist: Restriction | None = None
) -> list[list[Hypothesis]]:
    """The most probable next token at every step. src: (B, S) ids ending in EOS, padded.
    `project` maps decoder states to logits (default `model.project`); with a `shortlist`, each
    sentence chooses among its own candidates (`shortlist.py`)."""
    return _one_per_sentence(model, src, config, project, lambda lp, alive, step: lp.max(dim=-1).indices, shortlist)


@torch.inference_mode()
def sample_search(model: Transformer, src: Tensor, config: DecodeConfig, project: Projection | None = None) -> list[list[Hypothesis]]:
    """One sampled translation per sentence: each next token drawn from the model's distribution
    with `config.temperature` and `config.sample_topk`, by the sentence's own seeded uniforms (see
    the module docstring). src: (B, S) ids ending in EOS, padded."""
    pad_id = model.config.pad_id
    max_lens = _max_lengths(model, src, config)
    uniforms = torch.zeros(src.size(0), max(max_lens, default=0), dtype=torch.float64)  # (B, longest output)
    for row, (ids, n) in enumerate(zip(src.tolist(), max_lens)):
        uniforms[row, :n] = sentence_uniforms(config.seed, [i for i in ids if i != pad_id], n)
    uniforms = uniforms.to(src.device)

    def pick(lp: Tensor, alive: Tensor, step: int) -> Tensor:
        weights = sampling_weights(lp, config.temperature, config.sample_topk)  # (B_alive, V)
        return inverse_cdf(weights, uniforms[alive, step - 1])

    return _one_per_sentence(model, src, config, project, pick, None)


def sentence_uniforms(seed: int, source: Sequence[int], n: int) -> Tensor:
    """The `n` uniforms in [0, 1) a sentence draws, the i-th for its i-th output piece: from a CPU
    generator seeded by a hash of (seed, the source ids without padding), the same on every
    machine and device. Shape (n,), float64."""
    key = hashlib.blake2b(seed.to_bytes(8, "little"), digest_size=8)
    key.update(b"".join(i.to_bytes(4, "little") for i in source))
    generator = torch.Generator().manual_seed(int.from_bytes(key.digest(), "little"))
    return torch.rand(n, generator=generator, dtype=torch.float64)


def sampling_weights(lp: Tensor, temperature: float, topk: int) -> Tensor:
    """Unnormalized sampling weights ∝ p ** (1 / temperature) from log-probabilities lp (B, V),
    zero outside each row's `topk` largest (0: none cut; ties at the k-th are all kept) and
    wherever lp is -inf (banned ids). The largest weight of each row is 1. Shape (B, V)."""
    best = lp.max(dim=-1, keepdim=True).values  # (B, 1)
    weights = ((lp - best) / temperature).exp()  # subtracting the maximum first: no overflow or 0/0 at any temperature
    if 0 < topk < lp.size(-1):
        kth = lp.topk(topk, dim=-1).values[:, -1:]  # (B, 1)
        weights = weights.masked_fill(lp < kth, 0.0)
    return weights


def inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """For each row of `weights` (B, V) (unnormalized, not all zero), the id whose share of the
    cumulative weight holds u * total, u (B,) in [0, 1): an id with weight 0 is never chosen.
    Shape -> (B,)."""
    cdf = weights.double().cumsum(dim=-1)  # (B, V)
    total = cdf[:, -1:]  # (B, 1)
    target = torch.minimum(
        u.double().unsqueeze(1) * total, total.nextafter(torch.zeros_like(total))
    )  # below the total even if u * total rounds up to it
    return torch.searchsorted(cdf, target, right=True).squeeze(1)  # first id whose cumulative weight exceeds the target


def _one_per_sentence(
    model: Transformer, src: Tensor, config: DecodeConfig, project: Projection | None, pick: Picker, shortlist: Restriction | None
) -> list[list[Hypothesis]]:
    """Greedy search's loop, one hypothesis per sentence, with `pick` choosing each next token."""
    project = project or model.project
    c = model.config
    batch, device = src.size(0), src.device
    memory, src_mask = model.encode(src)
    state = model.init_state(memory, src_mask)
    max_lens = torch.tensor(_max_lengths(model, src, config), device=device)
    banned, eos_only = _banned(model, config, device), _eos_only(model, device)
    alive = torch.arange(batch, device=device)  # original row of each batch row
    tokens = torch.full((batch, 1), c.bos_id, dtype=torch.long, device=device)
    generated = torch.empty((batch, 0), dtype=torch.long, device=device)  # (B_alive, step) pieces so far
    outputs: list[list[int]] = [[] for _ in range(batch)]
    log_probs = [0.0] * batch
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    step = 0
    with History(model, src, 1, config.source_attention, config.alignment_heads) as history:
        while alive.numel():
            lp = _step_log_probs(model, project, tokens, state, shortlist, alive).index_fill_(1, banned, float("-inf"))  # (B_alive, V)
            history.record()
            ban_repeats(lp, generated, config.no_repeat_ngram)
            step += 1
            at_max = max_lens[alive] <= step
            if at_max.any():
                lp[at_max] += eos_only
            lp = _renormalized(lp, config)
            best = pick(lp, alive, step)  # (B_alive,)
            best_lp = lp.gather(1, best.unsqueeze(1)).squeeze(1)  # (B_alive,) the model's log-prob of each choice
            finished = best == c.eos_id
            for row, (orig, tok, tok_lp, done) in enumerate(zip(alive.tolist(), best.tolist(), best_lp.tolist(), finished.tolist())):
                log_probs[orig] += tok_lp
                if done:
                    n, attention = len(outputs[orig]) + 1, history.of(row, 0, len(outputs[orig]), orig)
                    score = length_normalized(log_probs[orig], n, config.length_penalty)
                    results[orig] = [Hypothesis(tuple(outputs[orig]), score, log_probs[orig], attention)]
                else:
                    outputs[orig].append(tok)
            generated = torch.cat([generated, best.unsqueeze(1)], dim=1)
            history.extend()
            keep = (~finished).nonzero().squeeze(1)
            if keep.numel() < finished.numel():
                history.select(keep)
                state = state.select(keep, keep)
                alive = alive[keep]
                best = best[keep]
                generated = generated[keep]
            tokens = best.unsqueeze(1)
    return results


def _finish(
    finished: list[list[Hypothesis]],
    eos_top: Tensor,
    alive: Tensor,
    prefixes: Tensor,
    cand_beam: Tensor,
    cand_scores: Tensor,
    config: DecodeConfig,
    history: History,
) -> Tensor:
    """Move the EOS candidates that rank within the top k (`eos_top`: (B_alive, k)) into
    `finished`: up to k per sentence, in rank order (fairseq's rule); with `early_stopping` False
    the best k by score of those before and the new ones (transformers' rule). True for each alive
    sentence that now has k of them."""
    k = config.beam_size
    hits = eos_top.nonzero().tolist()
    if not hits and config.early_stopping:  # the common step: no sentence finishes anything
        return torch.zeros(alive.numel(), dtype=torch.bool, device=alive.device)
    alive_rows = alive.tolist()
    for row, pos in hits:
        orig = alive_rows[row]
        if len(finished[orig]) < k or not config.early_stopping:
            beam = int(cand_beam[row, pos])
            tokens, lp_sum = tuple(prefixes[row, beam, 1:].tolist()), float(cand_scores[row, pos])
            score = length_normalized(lp_sum, len(tokens) + 1, config.length_penalty)
            finished[orig].append(Hypothesis(tokens, score, lp_sum, history.of(row, beam, len(tokens), orig)))
    if not config.early_stopping:
        for row in eos_top.any(dim=1).nonzero().squeeze(1).tolist():
            hyps = finished[alive_rows[row]]
            hyps[:] = sorted(hyps, key=lambda h: -h.score)[:k]  # stable: of equal scores the earlier stays
    return torch.tensor([len(finished[orig]) >= k for orig in alive_rows], device=alive.device, dtype=torch.bool)


def _cannot_improve(finished: list[list[Hypothesis]], alive: Tensor, scores: Tensor, step: int, config: DecodeConfig) -> Tensor:
    """For each alive sentence with k finished hypotheses: True where its best running hypothesis
    (`scores` (B_alive, k): sums of log-probabilities over `step` pieces), scored at its present
    length, is no better than the worst finished one (transformers' test for `early_stopping`
    False). Shape (B_alive,)."""
    best = scores.max(dim=1).values.tolist()
    return torch.tensor(
        [
            bool(finished[orig]) and length_normalized(b, step, config.length_penalty) <= min(h.score for h in finished[orig])
            for orig, b in zip(alive.tolist(), best)
        ],
        device=alive.device,
        dtype=torch.bool,
    )


@torch.inference_mode()
def beam_search(
    model: Transformer, src: Tensor, config: DecodeConfig, project: Projection | None = None, shortlist: Restriction | None = None
) -> list[list[Hypothesis]]:
    """The `n_best` best hypotheses of each sentence, best first. src: (B, S) ids ending in EOS, padded.
    `project` maps decoder states to logits (default `model.project`); with a `shortlist`, each
    sentence chooses among its own candidates (`shortlist.py`)."""
    project = project or model.project
    c = model.config
    k = config.beam_size
    batch, device, vocab = src.size(0), src.device, c.vocab_size
    memory, src_mask = model.encode(src)
    state = model.init_state(memory, src_mask)  # k decoder rows per sentence share its encoder keys/values
    max_lens = torch.tensor(_max_lengths(model, src, config), device=device)
    banned, eos_only = _banned(model, config, device), _eos_only(model, device)
    alive = torch.arange(batch, device=device)  # original sentence of each alive row group
    scores = torch.full((batch, k), float("-inf"), device=device)  # cumulative log-probs (B, k)
    scores[:, 0] = 0.0  # all beams start equal: keep one so the first step has no duplicates
    prefixes = torch.full((batch, k, 1), c.bos_id, dtype=torch.long, device=device)  # (B, k, T)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    cand_pos = torch.arange(2 * k, device=device)
    step = 0
    with History(model, src, k, config.source_attention, config.alignment_heads) as history:
        while alive.numel():
            n_alive = alive.numel()
            last = prefixes[:, :, -1].reshape(-1, 1)  # (B_alive * k, 1)
            lp = _step_log_probs(model, project, last, state, shortlist, alive, k).index_fill_(1, banned, float("-inf"))
            history.record()
            if config.no_repeat_ngram:
                ban_repeats(lp, prefixes[:, :, 1:].reshape(n_alive * k, -1), config.no_repeat_ngram)
            lp = lp.view(n_alive, k, vocab)
            step += 1
            at_max = max_lens[alive] <= step  # (B_alive,)
            if at_max.any():
                lp[at_max] += eos_only
            lp = _renormalized(lp.view(n_alive * k, vocab), config).view(n_alive, k, vocab)
            cand = lp.add_(scores.unsqueeze(2)).view(n_alive, k * vocab)  # cumulative scores of every extension
            cand_scores, cand_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (B, 2k): 2k so EOS can't starve the beam
            cand_beam, cand_tok = cand_idx // vocab, cand_idx % vocab
            is_eos = (cand_tok == c.eos_id) & torch.isfinite(cand_scores)

            # A sentence is done with k finished hypotheses (and, without early stopping, when its
            # running ones can no longer beat them) or at its maximum length.
            full = _finish(finished, is_eos[:, :k], alive, prefixes, cand_beam, cand_scores, config, history)

            # Continue with the k best candidates that are not EOS.
            order = (is_eos | ~torch.isfinite(cand_scores)).long() * (2 * k) + cand_pos  # non-EOS first, by rank
            keep_pos = order.topk(k, dim=1, largest=False).indices  # (B, k)
            new_scores = cand_scores.gather(1, keep_pos)
            new_scores = torch.where(is_eos.gather(1, keep_pos), torch.full_like(new_scores, float("-inf")), new_scores)
            new_beam = cand_beam.gather(1, keep_pos)  # (B, k)
            new_tok = cand_tok.gather(1, keep_pos)
            history.extend(new_beam)
            prefixes = torch.cat([prefixes.gather(1, new_beam.unsqueeze(2).expand(-1, -1, prefixes.size(2))), new_tok.unsqueeze(2)], dim=2)
            scores = new_scores
            done = (full if config.early_stopping else full & _cannot_improve(finished, alive, scores, step, config)) | at_max
            rows = (torch.arange(n_alive, device=device).unsqueeze(1) * k + new_beam).view(-1)  # (B*k,) rows of the cache

            keep = (~done).nonzero().squeeze(1)
            if keep.numel() < n_alive:
                rows = rows.view(n_alive, k)[keep].view(-1)
                alive, scores, prefixes = alive[keep], scores[keep], prefixes[keep]
                history.select(keep)
                state = state.select(rows, keep)
            else:
                state = state.select(rows)
    return [sorted(hyps, key=lambda h: -h.score)[: config.n_best] for hyps in finished]


def search(
    model: Transformer, src: Tensor, config: DecodeConfig, project: Projection | None = None, shortlist: Restriction | None = None
) -> list[list[Hypothesis]]:
    """Sampling when the config says so (over every piece: a `shortlist` is not used); else
    greedy search for beam size 1, beam search otherwise."""
    if config.sample:
        return sample_search(model, src, config, project)
    decoder = greedy_search if config.beam_size == 1 else beam_search
    return decoder(model, src, config, project, shortlist)
