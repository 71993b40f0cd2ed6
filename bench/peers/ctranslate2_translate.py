"""The same model in CTranslate2: a same-machine baseline for bench/speed/translate.py.

    pip install ctranslate2 sentencepiece safetensors sacrebleu numpy   # a separate venv is fine
    python bench/peers/ctranslate2_translate.py --model runs/multi30k/bundle [--threads 2] [--inter-threads 1 2] [--data-dir ../shared/data]

Builds a CTranslate2 model from an xformer bundle (pre-norm, LayerNorm, ReLU, sinusoidal
positions, tied embeddings: the `small` Multi30k model), then translates Multi30k test2016
in the three decoding columns (greedy with batches of 30, beam 5 with batches of 30, beam 5 one
sentence at a time), sorted by length as CTranslate2 does with max_batch_size, with one worker
on all threads (inter_threads=1) and with two of threads/2 each (keys ending in `_inter2`, to
set against `--workers 2`). Prints sentences/s and BLEU, to set against
`python bench/speed/translate.py --model DIR` run on the same machine. Needs neither torch nor
xformer.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import ctranslate2
import numpy as np
import sacrebleu
import sentencepiece
from ctranslate2.specs import common_spec, transformer_spec
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, baseline_arguments, test2016  # noqa: E402


def linear(spec, weights: dict, *names: str) -> None:
    """Set a CTranslate2 linear layer from one or more of ours, stacked along the output axis."""
    spec.weight = np.concatenate([weights[f"{n}.weight"] for n in names]).astype(np.float32)
    spec.bias = np.concatenate([weights[f"{n}.bias"] for n in names]).astype(np.float32)


def norm(spec, weights: dict, name: str) -> None:
    spec.gamma = weights[f"{name}.weight"].astype(np.float32)
    spec.beta = weights[f"{name}.bias"].astype(np.float32)


def sinusoids(max_len: int, d_model: int) -> np.ndarray:
    """Our positional table: sin at even, cos at odd dimensions."""
    position = np.arange(max_len)[:, None]
    div = np.exp(np.arange(0, d_model, 2) * (-np.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model))
    table[:, 0::2], table[:, 1::2] = np.sin(position * div), np.cos(position * div)
    return table.astype(np.float32)


def build_spec(bundle: Path) -> transformer_spec.TransformerSpec:
    config = json.loads((bundle / "config.json").read_text())["model"]
    if (config["norm"], config["norm_position"], config["tie_embeddings"]) != ("layernorm", "pre", True):
        raise SystemExit("only pre-norm LayerNorm models with tied embeddings convert")
    w = load_file(str(bundle / "model.safetensors"))
    spec = transformer_spec.TransformerSpec.from_config(
        (config["n_encoder_layers"], config["n_decoder_layers"]), config["h"], pre_norm=True, activation=common_spec.Activation.RELU
    )
    spec.config.layer_norm_epsilon = 1e-5  # torch.nn.LayerNorm's
    spec.config.add_source_eos = True  # xformer ends every source with EOS
    embedding = w["embedding.weight"].astype(np.float32)
    table = sinusoids(config["max_len"], config["d_model"])
    for side in (spec.encoder, spec.decoder):
        for embeddings in side.embeddings if isinstance(side.embeddings, list) else [side.embeddings]:
            embeddings.weight = embedding
        side.position_encodings.encodings = table
    for side, name in ((spec.encoder, "encoder"), (spec.decoder, "decoder")):
        norm(side.layer_norm, w, f"{name}.layer_norm")
        for i, layer in enumerate(side.layer):
            p = f"{name}.layers.{i}"
            linear(layer.self_attention.linear[0], w, f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj")
            linear(layer.self_attention.linear[1], w, f"{p}.self_attn.out_proj")
            norm(layer.self_attention.layer_norm, w, f"{p}.self_attn_layer_norm")
            linear(layer.ffn.linear_0, w, f"{p}.ffn.fc1")
            linear(layer.ffn.linear_1, w, f"{p}.ffn.fc2")
            norm(layer.ffn.layer_norm, w, f"{p}.final_layer_norm")
            if name == "decoder":
                linear(layer.attention.linear[0], w, f"{p}.encoder_attn.q_proj")
                linear(layer.attention.linear[1], w, f"{p}.encoder_attn.k_proj", f"{p}.encoder_attn.v_proj")
                linear(layer.attention.linear[2], w, f"{p}.encoder_attn.out_proj")
                norm(layer.attention.layer_norm, w, f"{p}.encoder_attn_layer_norm")
    spec.decoder.projection.weight = embedding
    spec.decoder.projection.bias = np.zeros(embedding.shape[0], dtype=np.float32)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(bundle / "spm.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    return spec


def main() -> None:
    parser = baseline_arguments(__doc__.splitlines()[0])
    parser.add_argument("--inter-threads", type=int, nargs="+", default=[1, 2], help="batches at once (each on threads/inter threads)")
    args = parser.parse_args()
    bundle = Path(args.model)
    sources, refs = test2016(args.data_dir)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(bundle / "spm.model"))
    tokens = [sp.encode(s, out_type=str) for s in sources]
    with tempfile.TemporaryDirectory() as tmp:
        spec = build_spec(bundle)
        spec.validate()
        spec.optimize(quantization="float32")
        spec.save(tmp)
        results = {"model": str(bundle), "ctranslate2": ctranslate2.__version__, "threads": args.threads}
        options = {"length_penalty": 1.0, "disable_unk": True, "max_decoding_length": 256}
        for inter in args.inter_threads:
            translator = ctranslate2.Translator(tmp, device="cpu", inter_threads=inter, intra_threads=max(1, args.threads // inter))
            translator.translate_batch(tokens[:60], max_batch_size=30, beam_size=5, **options)  # warm-up
            for name, beam, batch in COLUMNS:
                started = time.perf_counter()
                out = translator.translate_batch(tokens, max_batch_size=batch, beam_size=beam, **options)
                speed = len(tokens) / (time.perf_counter() - started)
                hyps = [sp.decode(r.hypotheses[0]) for r in out]
                key = name + (f"_inter{inter}" if inter > 1 else "")
                results[key] = {"sentences_per_s": round(speed, 1), "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
