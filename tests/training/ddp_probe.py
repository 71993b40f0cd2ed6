"""Run by tests/training/test_trainer.py under torchrun (2 processes on gloo). Each rank writes OUT/rank<N>.json:
whether it trained the tokenizer and the tokenizer's hash, how its accumulated gradients
compare with one process computing the whole global batch at once, and what it made of the
training data: the corpus cache it mapped, how many sentences it encoded itself, its batches.

    torchrun --nproc_per_node=2 tests/training/ddp_probe.py SRC TGT OUT
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from xformer_cli.batching import collate
from xformer_cli.config import TrainConfig
from xformer_cli.model import build_model
from xformer_cli.model.config import preset
from xformer_cli.text.files import read_lines
from xformer_cli.text.tokenizer import Tokenizer
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.loss import backward_accumulated
from xformer_cli.training.run_data import prepare_training_data
from xformer_cli.training.run_folder import RunFolder
from xformer_cli.training.run_tokenizer import prepare_tokenizer

SPM_SAMPLE, SEED, VOCAB = 300, 5, 400  # 300 of the corpus's 800 sentences: SentencePiece gets a sample


def main(src_path: str, tgt_path: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    d = Distributed(dist.get_rank(), dist.get_world_size())
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    trained = []

    def sentences() -> list[str]:
        trained.append(True)
        return [*src, *tgt]

    run = RunFolder(Path(out), d.main)
    tokenizer = prepare_tokenizer(TrainConfig(spm_sample=SPM_SAMPLE, seed=SEED), run, d, VOCAB, sentences, lambda _: None)

    # Gradient accumulation: 16 pairs; rank r holds pairs 8r..8r+7 as micro-batches of 3 and 5.
    c = preset("tiny", vocab_size=tokenizer.vocab_size, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(c)
    reference = copy.deepcopy(model)
    ddp = DistributedDataParallel(model)
    reductions = []

    def counting_hook(state, bucket):
        reductions.append(1)
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting_hook)
    s_ids, t_ids = tokenizer.encode(src[:16]), tokenizer.encode(tgt[:16])
    mine = range(8 * d.rank, 8 * d.rank + 8)
    micro = [collate([s_ids[i] for i in part], [t_ids[i] for i in part], c.pad_id, c.bos_id, c.eos_id) for part in (mine[:3], mine[3:])]
    backward_accumulated(ddp, micro, c.pad_id, 0.1, d)
    whole = collate(s_ids, t_ids, c.pad_id, c.bos_id, c.eos_id)
    backward_accumulated(reference, [whole], c.pad_id, 0.1, Distributed())
    grad_diff = max(float((p.grad - r.grad).abs().max()) for p, r in zip(model.parameters(), reference.parameters()))
    grad_size = max(float(r.grad.abs().max()) for r in reference.parameters())
    reductions_two_micro = len(reductions)
    reductions.clear()
    model.zero_grad()
    backward_accumulated(ddp, micro[:1], c.pad_id, 0.1, d)

    # The training data: rank 0 encodes into the cache, rank 1 maps the same files.
    encoded = []
    real_encode = Tokenizer.encode
    Tokenizer.encode = lambda self, texts, threads=1: encoded.append(len(texts)) or real_encode(self, texts, threads)
    cfg = TrainConfig(src=src_path, tgt=tgt_path, spm_sample=SPM_SAMPLE, seed=SEED, cache_dir=str(Path(out) / "cache"))
    data = prepare_training_data(cfg, run, d, preset("tiny", vocab_size=VOCAB), lambda _: None)
    batches = data.epoch_batches(300, SEED, 0, d)
    report = json.dumps(
        {
            "rank": d.rank,
            "trained_tokenizer": bool(trained),
            "tokenizer_sha": hashlib.sha256(tokenizer.model_proto).hexdigest(),
            "grad_diff": grad_diff,
            "grad_size": grad_size,
            "reductions_two_micro_batches": reductions_two_micro,
            "reductions_one_micro_batch": len(reductions),
            "cache": [str(corpus.folder) for corpus in data.corpora],
            "tokens_sha": hashlib.sha256(data.corpora[0].src_tokens.tobytes() + data.corpora[0].tgt_tokens.tobytes()).hexdigest(),
            "sentences_encoded": sum(encoded),
            "batches": [batches[k].tolist() for k in range(len(batches))],
        }
    )
    (Path(out) / f"rank{d.rank}.json").write_text(report, encoding="utf-8")  # a file each: printed lines of two processes can interleave
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
