"""Normalization study: LayerNorm, RMSNorm, DyT and Derf, pre- and post-norm, in the `small`
Transformer on Multi30k, with equal budgets and seeds, plus a higher learning rate per variant.

    python bench/quality/norms.py [--max-steps 800] [--probe-steps 500] [--high-lr 4e-3] [--out runs/norms]
    python bench/quality/norms.py --report-only      # rewrite the report from the runs finished so far

Budget: every variant trains the recipe models/multi30k.toml (2,048-token batches, warmup 400,
peak lr 1.56e-3, seed 1) for --max-steps updates; then every variant trains again at --high-lr
for --probe-steps updates, past the end of warmup, to see whether it diverges and recovers.
On 2 CPU cores two processes of one thread each train about 13% more tokens per second than
one process of two threads, so the study runs as two shards side by side:

    python bench/quality/norms.py --shard 0/2 --threads 1 &  python bench/quality/norms.py --shard 1/2 --threads 1

About 36 minutes per 800-update run and 20 per probe that way: the 16 runs take about four hours. Each run
checkpoints every 100 steps and resumes where it stopped, so the study can be spread over
several sessions; the report is rewritten after each run, listing the runs still missing.

Writes docs/norms.md (the table) and docs/norms.png (training and validation curves). A section
of docs/norms.md that starts with the heading "## Reading" is written by hand and kept as it is
when the script rewrites the table.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.recipe import load_recipe
from xformer_cli.text.files import read_lines
from xformer_cli.training.run_folder import read_metrics

ROOT = Path(__file__).resolve().parents[2]
NORMS = ("layernorm", "rmsnorm", "dyt", "derf")
POSITIONS = ("pre", "post")


def run_name(norm: str, position: str, lr: float) -> str:
    return f"{norm}-{position}-lr{lr:g}"


def steps_to(valid: list[dict], target: float) -> int | None:
    """First validated step whose valid loss is at most `target`."""
    return next((r["step"] for r in valid if r["valid_loss"] <= target), None)


def largest_spike(losses: list[float]) -> float:
    """Largest rise of the training loss above its running minimum (nats); inf for NaN or inf."""
    if any(not math.isfinite(x) for x in losses):
        return math.inf
    spike, lowest = 0.0, math.inf
    for x in losses:
        lowest = min(lowest, x)
        spike = max(spike, x - lowest)
    return spike


def summarize(run: Path, test_src: list[str], test_ref: list[str]) -> dict:
    """The table row of a finished run (test BLEU cached in the run folder)."""
    history = read_metrics(run / "metrics.jsonl")
    train = [r for r in history if "loss" in r]
    valid = [r for r in history if "valid_loss" in r]
    cached = run / "test2016.json"
    if not cached.exists():
        from xformer_cli.decoding.translator import Translator

        hyps = Translator.load(str(run / "bundle"), device="cpu").translate(test_src, beam_size=5)
        cached.write_text(json.dumps({"bleu": corpus_bleu(hyps, [test_ref]).score}))
    losses = [r["loss"] for r in train if r["step"] > 100]  # after the first steps' fall
    spike = largest_spike(losses)
    final, best = losses[-1], min(losses)
    if not math.isfinite(spike) or final > best + 1.0:
        stability = "diverged"
    elif max(v["valid_bleu"] for v in valid) < 1.0:
        stability = "stalled (valid BLEU < 1)"
    elif spike > 0.5:
        stability = f"spiked {spike:.1f}, recovered"
    else:
        stability = "stable"
    speeds = sorted(r["tokens_per_s"] for r in train[1:]) or [0.0]
    return {
        "bleu": json.loads(cached.read_text())["bleu"],
        "best_valid_loss": min(v["valid_loss"] for v in valid),
        "valid": valid,
        "tokens_per_s": speeds[len(speeds) // 2],
        "stability": stability,
        "steps": train[-1]["step"],
        "history": history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--probe-steps", type=int, default=500)
    parser.add_argument("--high-lr", type=float, default=4e-3)
    parser.add_argument("--target-loss", type=float, default=2.5, help="valid loss for the 'steps to' column")
    parser.add_argument("--out", default=str(ROOT / "runs" / "norms"))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from finished runs")
    parser.add_argument("--shard", default="0/1", help="I/N: train only runs I, I+N, I+2N, ... (N processes side by side)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: the recipe's)")
    args = parser.parse_args()
    shard, shards = (int(x) for x in args.shard.split("/"))

    recipe = load_recipe(ROOT / "models" / "multi30k.toml")
    data = Path(args.data_dir) / "multi30k"
    test_src, test_ref = read_lines(data / "test2016.de"), read_lines(data / "test2016.en")
    plan = [(n, p, recipe.train.lr, args.max_steps) for n in NORMS for p in POSITIONS]
    plan += [(n, p, args.high_lr, args.probe_steps) for n in NORMS for p in POSITIONS]
    for index, (norm, position, lr, steps) in enumerate(plan):
        run = Path(args.out) / run_name(norm, position, lr)
        if not args.report_only and index % shards == shard and not (run / "bundle").exists():
            from rich.console import Console

            from xformer_cli.training.trainer import Trainer

            model = replace(recipe.model, norm=norm, norm_position=position)
            train = replace(
                recipe.train,
                lr=lr,
                max_steps=steps,
                max_time=0,
                valid_every=100,
                valid_bleu_sentences=200,
                save_every=100,
                keep_last=2,
                threads=args.threads or recipe.train.threads,
            )
            resume = (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir())
            Trainer(model, train, run, resume=resume, decode=recipe.decode, console=Console(stderr=True)).run()
        write_report(plan, args, test_src, test_ref)


def write_report(plan: list[tuple[str, str, float, int]], args: argparse.Namespace, test_src: list[str], test_ref: list[str]) -> None:
    rows, missing = [], []
    for norm, position, lr, _ in plan:
        name = run_name(norm, position, lr)
        run = Path(args.out) / name
        if (run / "bundle").exists():
            rows.append((name, summarize(run, test_src, test_ref)))
        else:
            missing.append(name)
    if not rows:
        return
    plot(rows, sorted({lr for _, _, lr, _ in plan}), ROOT / "docs" / "norms.png")
    table = "\n".join(
        f"| {name} | {r['steps']} | {r['bleu']:.1f} | {r['best_valid_loss']:.3f} | "
        f"{steps_to(r['valid'], args.target_loss) or '—'} | {r['tokens_per_s']:.0f} | {r['stability']} |"
        for name, r in rows
    )
    note = f"\nRuns not finished yet: {', '.join(missing)}.\n" if missing else ""
    probes = probe_table(dict(rows), plan[0][2], args)  # plan[0][2]: the recipe's learning rate
    report = ROOT / "docs" / "norms.md"
    reading = kept_reading(report)
    report.write_text(
        "# Normalization study (table and figure written by bench/quality/norms.py)\n\n"
        f"`small` preset on Multi30k (models/multi30k.toml, seed 1): {args.max_steps} updates of 2,048-token batches per "
        f"variant at the recipe's learning rate, then {args.probe_steps} updates at {args.high_lr:g} to probe stability. "
        "Test BLEU is sacreBLEU on test2016 with beam 5; valid loss is the per-token NLL on the whole valid set, "
        f"every 100 updates. 'Stability' reads the training loss after step 100: a rise of more than 0.5 nats above its "
        "running minimum is a spike; a final loss more than 1 nat above the best, or NaN, is divergence; a run "
        "that never reaches a valid BLEU of 1 has stalled (it did not learn to translate). "
        "Tokens/s is the median over 50-update windows of runs made as two one-thread processes side by side "
        "(`--shard`): it compares the variants with each other, not with other tables.\n\n"
        f"| run | updates | test2016 BLEU | best valid loss | updates to valid loss {args.target_loss:g} | tokens/s | stability |\n"
        f"|---|---:|---:|---:|---:|---:|---|\n{table}\n{note}{probes}\n![training and validation curves](norms.png)\n" + reading,
        encoding="utf-8",
    )


def probe_table(rows: dict[str, dict], base_lr: float, args: argparse.Namespace) -> str:
    """Valid loss of each variant at the last update of its probe, at both learning rates."""
    lines = []
    for norm in NORMS:
        for position in POSITIONS:
            base = rows.get(run_name(norm, position, base_lr))
            probe = rows.get(run_name(norm, position, args.high_lr))
            if base is None or probe is None:
                continue
            at = {
                lr: next((v["valid_loss"] for v in r["valid"] if v["step"] == args.probe_steps), math.nan)
                for lr, r in ((base_lr, base), (args.high_lr, probe))
            }
            lines.append(f"| {norm}-{position} | {at[base_lr]:.3f} | {at[args.high_lr]:.3f} | {at[args.high_lr] - at[base_lr]:+.3f} |")
    if not lines:
        return ""
    return (
        f"\nValid loss after {args.probe_steps} updates at the recipe's learning rate and at {args.high_lr:g} "
        "(same seed, same batches; lower is better):\n\n"
        f"| variant | lr {base_lr:g} | lr {args.high_lr:g} | change |\n|---|---:|---:|---:|\n" + "\n".join(lines) + "\n"
    )


def kept_reading(report: Path) -> str:
    """The hand-written "## Reading" section of the current report, or "" where there is none."""
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    start = text.find("\n## Reading")
    return text[start:] if start >= 0 else ""


def plot(rows: list[tuple[str, dict]], lrs: list[float], out: Path) -> None:
    """Training and validation loss of every run: one row of two panels per learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(lrs), 2, figsize=(13, 4.5 * len(lrs)), squeeze=False)
    colors = dict(zip(NORMS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for (ax_train, ax_valid), lr in zip(axes, lrs):
        for name, r in rows:
            if not name.endswith(f"-lr{lr:g}"):
                continue
            norm, position = name.split("-")[:2]
            style = "-" if position == "pre" else "--"
            train = [x for x in r["history"] if "loss" in x]
            ax_train.plot([x["step"] for x in train], [x["loss"] for x in train], style, color=colors[norm], label=name)
            ax_valid.plot([x["step"] for x in r["valid"]], [x["valid_loss"] for x in r["valid"]], style, color=colors[norm], label=name)
        ax_train.set_title(f"training loss (label-smoothed), lr {lr:g}")
        ax_valid.set_title(f"validation loss (NLL per token), lr {lr:g}")
        for ax in (ax_train, ax_valid):
            ax.set_xlabel("update")
            ax.set_ylim(top=8)
            ax.grid(alpha=0.3)
        if ax_valid.lines:
            ax_valid.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
