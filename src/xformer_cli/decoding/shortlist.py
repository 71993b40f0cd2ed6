"""A lexical shortlist: each sentence's search scores only the target pieces its source makes likely.

A decoding step with few rows (beam 5, one sentence) streams the whole output projection, one
row per vocabulary piece, through the cache for little arithmetic. Marian's CPU decoder projects
instead onto a shortlist built from a word alignment of the training corpus: the most frequent
target words, plus for each source word the target words most often aligned to it. xformer does
the same over SentencePiece pieces (`scripts/build_shortlist.py` makes the table from
`scripts/align_corpus.py`'s links; a bundle carries it as `shortlist.safetensors`, `bundles/shortlist.py`):

    candidates(sentence) = frequent ∪ table[p] for each source piece p ∪ {EOS}

A batch projects onto the union of its sentences' candidates (one product for all rows), and
each row is log-softmaxed over its own sentence's candidates only, every other piece -inf, so a
sentence's translation does not depend on the sentences batched with it. Scores are then
log-probabilities renormalized over the shortlist (as in Marian); that renormalization, not a
missing piece, is what it costs in BLEU (docs/benchmarks.md, "A lexical shortlist"), so it is off
unless asked for (`DecodeConfig.shortlist`, `--shortlist`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from xformer_cli.bundles.shortlist import NONE, Shortlist


@dataclass(frozen=True)
class Restriction:
    """A batch's shortlist: the union of its sentences' candidates (`columns`, (C,) sorted ids),
    which of them each sentence may choose (`allowed`, (B, C); None where every sentence may
    choose all), and the output projection cut to those columns."""

    columns: Tensor
    allowed: Tensor | None
    weight: Tensor  # (C, d_model)
    bias: Tensor | None  # (C,)
    vocab: int

    def log_probs(self, hidden: Tensor, sentences: Tensor) -> Tensor:
        """Log-probabilities of the next piece for decoder states `hidden` (R, d_model), row r of
        sentence `sentences[r]`: over that sentence's candidates, -inf elsewhere. Shape -> (R, V)."""
        logits = F.linear(hidden, self.weight, self.bias).float()  # (R, C)
        if self.allowed is not None:
            logits = logits.masked_fill(~self.allowed[sentences], float("-inf"))
        out = logits.new_full((hidden.size(0), self.vocab), float("-inf"))  # (R, V)
        return out.index_copy_(1, self.columns, logits.log_softmax(dim=-1))


def restrict(shortlist: Shortlist, src: Tensor, weight: Tensor, bias: Tensor | None, pad_id: int, eos_id: int) -> Restriction:
    """The candidates of each sentence of `src` (B, S), and the output projection (`weight`
    (V, d_model), `bias` (V,)) cut to their union."""
    vocab = weight.size(0)
    allowed = torch.zeros(src.size(0), vocab, dtype=torch.bool, device=src.device)  # (B, V)
    allowed[:, shortlist.frequent.to(src.device)] = True
    allowed[:, eos_id] = True
    rows = shortlist.table.to(src.device)[src.masked_fill(src == pad_id, eos_id)]  # (B, S, K)
    sentence = torch.arange(src.size(0), device=src.device).view(-1, 1, 1).expand_as(rows)
    found = rows != NONE
    allowed[sentence[found], rows[found]] = True
    columns = allowed.any(dim=0).nonzero().squeeze(1)  # (C,) the union, sorted
    mask = allowed[:, columns]  # (B, C)
    return Restriction(
        columns=columns,
        allowed=None if bool(mask.all()) else mask,
        weight=weight[columns].contiguous(),
        bias=None if bias is None else bias[columns].contiguous(),
        vocab=vocab,
    )
