"""Growing the shipped model into other shapes, before any fine-tuning: the validation loss of each
way of choosing the new layers (the table in docs/models.md and in `training/grow.py`).

    python bench/quality/grow_shapes.py [--model models/de-en-general] [--valid runs/general-data/valid] [--lines 300]

Takes every fifth line of the mixed development set (`scripts/prepare_general.py` writes
`valid.de`/`valid.en`: Tatoeba, Multi30k and newstest2013 valid), the first --lines of them, and
prints the token loss (teacher-forced, no label smoothing) of the model as it is and of each
shape, its layers taken from the trained ones as listed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from xformer_cli.batching import collate
from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.model.transformer import build_model
from xformer_cli.shipped import default_model
from xformer_cli.training.grow import is_added_projection, layers_from

# name -> (encoder layers from, decoder layers from, whether the repeated encoder layers start as identities)
SHAPES = {
    "6+3 stacked": ([0, 1, 2, 0, 1, 2], [0, 1, 2], False),
    "6+3 interleaved": ([0, 0, 1, 1, 2, 2], [0, 1, 2], False),
    "6+3 new layers zeroed (identity)": ([0, 1, 2, 0, 1, 2], [0, 1, 2], True),
    "3+2 keeping 0, 2": ([0, 1, 2], [0, 2], False),
    "3+2 keeping 0, 1": ([0, 1, 2], [0, 1], False),
    "3+2 keeping 1, 2": ([0, 1, 2], [1, 2], False),
    "3+1 keeping 2": ([0, 1, 2], [2], False),
    "3+1 keeping 0": ([0, 1, 2], [0], False),
    "6+1 stacked, keeping 0": ([0, 1, 2, 0, 1, 2], [0], False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--valid", default="runs/general-data/valid", help="path without .de/.en")
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    c = bundle.model.config
    src, tgt = (Path(f"{args.valid}.{side}").read_text(encoding="utf-8").splitlines()[::5][: args.lines] for side in ("de", "en"))
    batch = collate(bundle.tokenizer.encode(src), bundle.tokenizer.encode(tgt), c.pad_id, c.bos_id, c.eos_id)

    @torch.inference_mode()
    def loss(model) -> float:
        logits = model.eval()(batch.src, batch.tgt_in)
        return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=c.pad_id).item()

    print(json.dumps({"shape": "as it is", "loss": round(loss(bundle.model), 3)}))
    trained = bundle.model.state_dict()
    for name, (encoder, decoder, identity) in SHAPES.items():
        state = layers_from(trained, {"encoder": encoder, "decoder": decoder})
        if identity:  # the repeated layers add nothing at first: their output projections zeroed (--init-new-layers identity)
            first_added = {"encoder": c.n_encoder_layers, "decoder": c.n_decoder_layers}
            state = {key: torch.zeros_like(t) if is_added_projection(key, first_added) else t for key, t in state.items()}
        model = build_model(replace(c, n_encoder_layers=len(encoder), n_decoder_layers=len(decoder)))
        model.load_state_dict(state)
        print(json.dumps({"shape": name, "loss": round(loss(model), 3)}), flush=True)


if __name__ == "__main__":
    main()
