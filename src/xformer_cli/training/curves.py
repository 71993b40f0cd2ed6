"""Training and validation curves as a PNG (needs matplotlib, the `plot` extra)."""

from __future__ import annotations

from pathlib import Path

from xformer_cli.training.run_folder import read_metrics


def plot_curves(metrics_path: Path, out: Path, log=print) -> bool:
    """Draw train loss, valid loss and valid BLEU against steps. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install 'xformer-cli[plot]'): no curves.png")
        return False
    if not metrics_path.exists():
        return False
    records = read_metrics(metrics_path)
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if "valid_loss" in r]
    fig, (ax_loss, ax_bleu) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train (label-smoothed)")
    ax_loss.plot([r["step"] for r in valid], [r["valid_loss"] for r in valid], "o-", label="valid (NLL)")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss per token")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_bleu.plot([r["step"] for r in valid], [r["valid_bleu"] for r in valid], "o-", color="tab:green")
    ax_bleu.set_xlabel("step")
    ax_bleu.set_ylabel("valid BLEU (greedy)")
    ax_bleu.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True
