"""A bundle's lexical shortlist: for each source piece, the target pieces a sentence holding it may
be translated into, and the target pieces every sentence may choose (`decoding/shortlist.py` is
how a search uses it; `scripts/build_shortlist.py` makes one from a word-aligned corpus). Stored
as `shortlist.safetensors` (int32 tensors `table` and `frequent`), read without running code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from xformer_cli.errors import ModelLoadError

SHORTLIST_FILE = "shortlist.safetensors"
NONE = -1  # an empty place in a row of the table


@dataclass(frozen=True)
class Shortlist:
    """`table` (source vocabulary, K): for each source piece id, the K target piece ids most
    often aligned to it, most often first (NONE where fewer); `frequent` (N,): target piece ids
    every sentence may choose."""

    table: Tensor
    frequent: Tensor


def from_counts(links: np.ndarray, frequency: np.ndarray, per_piece: int, frequent: int) -> Shortlist:
    """A shortlist from alignment counts: `links` (source vocabulary, target vocabulary), how
    often each source piece was linked to each target piece; `frequency` (target vocabulary,),
    how often each target piece occurs. Each source piece keeps its `per_piece` most linked
    target pieces (ties: the lower id), and the `frequent` most frequent target pieces go to
    every sentence. A source piece never linked keeps none."""
    k = min(per_piece, links.shape[1])
    order = np.argsort(-links, axis=1, kind="stable")[:, :k]  # (S_vocab, k)
    counts = np.take_along_axis(links, order, axis=1)
    table = np.where(counts > 0, order, NONE)
    top = np.argsort(-frequency, kind="stable")[: min(frequent, len(frequency))]
    top = top[frequency[top] > 0]
    return Shortlist(torch.from_numpy(table.astype(np.int64)), torch.from_numpy(np.sort(top).astype(np.int64)))


def save_shortlist(shortlist: Shortlist, path: str | Path) -> None:
    """Write `shortlist` as safetensors (int32), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    tensors = {"table": shortlist.table.to(torch.int32).contiguous(), "frequent": shortlist.frequent.to(torch.int32).contiguous()}
    save_file(tensors, str(partial), metadata={"format": "pt"})
    partial.replace(path)


def load_shortlist(path: Path, source_vocab: int, target_vocab: int) -> Shortlist:
    """Read a shortlist written by `save_shortlist` for a model of these vocabulary sizes; a
    ModelLoadError for a corrupt file or one that does not fit the model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"corrupt shortlist {path}: {err}") from None
    table, frequent = tensors.get("table"), tensors.get("frequent")
    if table is None or frequent is None or table.dim() != 2 or frequent.dim() != 1:
        raise ModelLoadError(f"corrupt shortlist {path}: expected a 2-D 'table' and a 1-D 'frequent'")
    if table.size(0) != source_vocab:
        raise ModelLoadError(f"shortlist {path} does not fit the model: {table.size(0)} source pieces, the model has {source_vocab}")
    if table.dtype.is_floating_point or frequent.dtype.is_floating_point:
        raise ModelLoadError(f"corrupt shortlist {path}: piece ids must be integers")
    table, frequent = table.long(), frequent.long()
    if bool(((table < NONE) | (table >= target_vocab)).any()) or bool(((frequent < 0) | (frequent >= target_vocab)).any()):
        raise ModelLoadError(f"shortlist {path} does not fit the model: a piece id outside its {target_vocab} target pieces")
    return Shortlist(table, frequent)
