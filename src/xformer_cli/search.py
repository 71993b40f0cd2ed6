"""Greedy and beam search over the model's `encode`/`decode`, batched, with the key/value cache.

Rules learned by fairseq and kept here: padding, BOS and UNK are never selected; EOS is forced at
the maximum length; beam search keeps 2×beam candidates so finished hypotheses never starve the
beam; the cache is reordered with the beam; finished sentences leave the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from xformer_cli.config import DecodeConfig
from xformer_cli.model.transformer import Transformer
from xformer_cli.penalties import length_normalized, max_output_length


@dataclass(frozen=True)
class Hypothesis:
    """One translation: its piece ids (no BOS/EOS), length-normalized score and raw log-probability."""

    tokens: tuple[int, ...]
    score: float
    log_prob: float


def _banned(model: Transformer) -> list[int]:
    c = model.config
    return [c.pad_id, c.bos_id, c.unk_id]


def _step_log_probs(model: Transformer, tokens: Tensor, state) -> Tensor:
    """Log-probabilities of the next token after `tokens` (B, 1). Shape -> (B, V)."""
    hidden = model.decode(tokens, state, incremental=True)  # (B, 1, d_model)
    return model.project(hidden)[:, -1].float().log_softmax(dim=-1)  # (B, V)


def _max_lengths(model: Transformer, src: Tensor, config: DecodeConfig) -> list[int]:
    src_lens = (src != model.config.pad_id).sum(dim=1).tolist()
    return [max_output_length(n - 1, config.max_len_a, config.max_len_b, model.config.max_len) for n in src_lens]


@torch.inference_mode()
def greedy_search(model: Transformer, src: Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """The most probable next token at every step. src: (B, S) ids ending in EOS, padded."""
    c = model.config
    batch = src.size(0)
    memory, src_mask = model.encode(src)
    state = model.init_state(memory, src_mask)
    max_lens = torch.tensor(_max_lengths(model, src, config), device=src.device)
    alive = torch.arange(batch, device=src.device)  # original row of each batch row
    tokens = torch.full((batch, 1), c.bos_id, dtype=torch.long, device=src.device)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    log_probs = [0.0] * batch
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    banned = _banned(model)
    step = 0
    while alive.numel():
        lp = _step_log_probs(model, tokens, state)  # (B_alive, V)
        lp[:, banned] = float("-inf")
        step += 1
        force_eos = max_lens[alive] <= step
        lp[force_eos] = torch.where(
            torch.arange(lp.size(1), device=lp.device) == c.eos_id, lp[force_eos], torch.tensor(float("-inf"))
        )
        best_lp, best = lp.max(dim=-1)  # (B_alive,)
        finished = best == c.eos_id
        for row, (orig, tok, tok_lp, done) in enumerate(zip(alive.tolist(), best.tolist(), best_lp.tolist(), finished.tolist())):
            log_probs[orig] += tok_lp
            if done:
                n = len(outputs[orig]) + 1
                results[orig] = [Hypothesis(tuple(outputs[orig]), length_normalized(log_probs[orig], n, config.length_penalty), log_probs[orig])]
            else:
                outputs[orig].append(tok)
        keep = (~finished).nonzero().squeeze(1)
        if keep.numel() < finished.numel():
            state = state.select(keep)
            alive = alive[keep]
            best = best[keep]
        tokens = best.unsqueeze(1)
    return results


@torch.inference_mode()
def beam_search(model: Transformer, src: Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """The `n_best` best hypotheses of each sentence, best first. src: (B, S) ids ending in EOS, padded."""
    c = model.config
    k = config.beam_size
    batch, device = src.size(0), src.device
    memory, src_mask = model.encode(src)
    state = model.init_state(memory, src_mask).select(torch.arange(batch, device=device).repeat_interleave(k))
    max_lens = torch.tensor(_max_lengths(model, src, config), device=device)
    alive = torch.arange(batch, device=device)  # original sentence of each alive row group
    scores = torch.full((batch, k), float("-inf"), device=device)  # cumulative log-probs (B, k)
    scores[:, 0] = 0.0  # all beams start equal: keep one so the first step has no duplicates
    prefixes = torch.full((batch, k, 1), c.bos_id, dtype=torch.long, device=device)  # (B, k, T)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    banned = _banned(model)
    cand_pos = torch.arange(2 * k, device=device)
    step = 0
    while alive.numel():
        n_alive = alive.numel()
        lp = _step_log_probs(model, prefixes[:, :, -1].reshape(-1, 1), state)  # (B*k, V)
        vocab = lp.size(1)
        lp[:, banned] = float("-inf")
        step += 1
        force_eos = (max_lens[alive] <= step).repeat_interleave(k)  # (B*k,)
        if force_eos.any():
            eos_only = torch.full_like(lp[0], float("-inf"))
            eos_only[c.eos_id] = 0.0
            lp[force_eos] = lp[force_eos] + eos_only
        cand = (scores.unsqueeze(2) + lp.view(n_alive, k, vocab)).view(n_alive, k * vocab)
        cand_scores, cand_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (B, 2k): 2k so EOS can't starve the beam
        cand_beam, cand_tok = cand_idx // vocab, cand_idx % vocab
        is_eos = (cand_tok == c.eos_id) & torch.isfinite(cand_scores)

        # Finalize EOS candidates that rank within the top k.
        done = torch.zeros(n_alive, dtype=torch.bool, device=device)
        for row, pos in (is_eos[:, :k]).nonzero().tolist():
            orig = int(alive[row])
            if len(finished[orig]) < k:
                beam = int(cand_beam[row, pos])
                tokens = tuple(prefixes[row, beam, 1:].tolist())
                lp_sum = float(cand_scores[row, pos])
                finished[orig].append(Hypothesis(tokens, length_normalized(lp_sum, len(tokens) + 1, config.length_penalty), lp_sum))
        for row in range(n_alive):
            orig = int(alive[row])
            done[row] = len(finished[orig]) >= k or bool(max_lens[orig] <= step)

        # Continue with the k best candidates that are not EOS.
        order = (is_eos | ~torch.isfinite(cand_scores)).long() * (2 * k) + cand_pos  # non-EOS first, by rank
        keep_pos = order.topk(k, dim=1, largest=False).indices  # (B, k)
        new_scores = cand_scores.gather(1, keep_pos)
        new_scores = torch.where(is_eos.gather(1, keep_pos), torch.full_like(new_scores, float("-inf")), new_scores)
        new_beam = cand_beam.gather(1, keep_pos)  # (B, k)
        new_tok = cand_tok.gather(1, keep_pos)
        prefixes = torch.cat([prefixes.gather(1, new_beam.unsqueeze(2).expand(-1, -1, prefixes.size(2))), new_tok.unsqueeze(2)], dim=2)
        scores = new_scores
        reorder = (torch.arange(n_alive, device=device).unsqueeze(1) * k + new_beam).view(-1)  # (B*k,) rows of the cache

        keep = (~done).nonzero().squeeze(1)
        if keep.numel() < n_alive:
            reorder = reorder.view(n_alive, k)[keep].view(-1)
            alive, scores, prefixes = alive[keep], scores[keep], prefixes[keep]
        state = state.select(reorder)
    return [sorted(hyps, key=lambda h: -h.score)[: config.n_best] for hyps in finished]


def search(model: Transformer, src: Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """Greedy search for beam size 1, beam search otherwise."""
    return greedy_search(model, src, config) if config.beam_size == 1 else beam_search(model, src, config)
