"""See the attention: the decoder's attention over the source for one translation, as a heatmap."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from xformer_cli.decoding.source_attention import teacher_forced
from xformer_cli.errors import XformerError
from xformer_cli.model.transformer import Transformer


def cross_attention(model: Transformer, src_ids: list[int], tgt_ids: list[int], layer: int = -1) -> Tensor:
    """Encoder attention weights of one decoder layer, averaged over heads, for a source and its
    translation (teacher-forced: the same numbers incremental decoding produced).

    Shape: (len(tgt_ids) + 1, len(src_ids) + 1): rows are target positions predicting each piece
    and EOS, columns are source pieces and EOS.
    """
    heads = [(layer, head) for head in range(model.config.h)]
    return teacher_forced(model, [src_ids], [tgt_ids], heads)[0]  # on the CPU for drawing


def plot_attention(weights: Tensor, src_pieces: list[str], tgt_pieces: list[str], path: Path) -> None:
    """Write the heatmap (target pieces down, source pieces across) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise XformerError("--attention-plot needs matplotlib: pip install 'xformer-cli[plot]'") from None
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(src_pieces) + 2), max(3, 0.4 * len(tgt_pieces) + 1.5)))
    ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(src_pieces)), src_pieces, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt_pieces)), tgt_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    ax.set_title("encoder attention (last decoder layer, mean over heads)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
