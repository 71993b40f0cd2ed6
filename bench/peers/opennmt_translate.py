"""The same model in OpenNMT-py: a same-machine baseline for bench/speed/translate.py.

    # a separate venv: OpenNMT-py 3.5.1 asks for torch < 2.3, but runs on the torch we use
    pip install torch==2.13.0 && pip install --no-deps OpenNMT-py==3.5.1
    pip install configargparse pyyaml sacrebleu six sentencepiece safetensors numpy "pyonmttok<2,>=1.37" \
        spacy rapidfuzz pyahocorasick fasttext-wheel flask waitress tensorboard "ctranslate2>=4,<5"
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 python bench/peers/opennmt_translate.py --model runs/multi30k/bundle

Builds an OpenNMT-py checkpoint from an xformer bundle (pre-norm, LayerNorm, ReLU, sinusoidal
positions, tied embeddings: the `small` Multi30k model) and translates Multi30k test2016 in
the three decoding columns through OpenNMT-py's own inference engine (what `onmt_translate` runs):
greedy with batches of 30, beam 5 with batches of 30, beam 5 one sentence at a time. The clock
covers `infer_file` (reading, batching, decoding, writing), not loading. Prints sentences/s and
BLEU, to set against `python bench/speed/translate.py --model DIR` on the same machine. Needs
neither xformer nor its venv. TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 lets torch >= 2.6 read the
checkpoint's option namespace, which OpenNMT-py pickles.

Where OpenNMT-py's defaults differ from ours, the checkpoint follows our model: LayerNorm eps
1e-5 (theirs 1e-6), biases on the query/key/value projections, and the source ends with EOS
(written into the source file, since OpenNMT-py adds none). Decoding keeps `onmt_translate`'s
defaults (average length penalty, `-max_length_ratio 1.25`) except `-ban_unk_token`, as we do.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import sacrebleu
import sentencepiece
import torch
from onmt import opts
from onmt.inference_engine import InferenceEnginePY
from onmt.inputters.inputter import dict_to_vocabs, vocabs_to_dict
from onmt.model_builder import build_base_model
from onmt.utils.parse import ArgumentParser
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, baseline_arguments, test2016  # noqa: E402


def model_options(config: dict) -> argparse.Namespace:
    """OpenNMT-py's training options for a model of our config."""
    parser = ArgumentParser()
    opts.train_opts(parser)
    opt = parser.parse_args(["-data", "unused", "-src_vocab", "unused"])
    opt.__dict__.update(
        encoder_type="transformer",
        decoder_type="transformer",
        enc_layers=config["n_encoder_layers"],
        dec_layers=config["n_decoder_layers"],
        hidden_size=config["d_model"],
        word_vec_size=config["d_model"],
        transformer_ff=config["d_ff"],
        heads=config["h"],
        position_encoding=True,  # sinusoidal, interleaved: sin at even, cos at odd dimensions, as ours
        share_embeddings=True,
        share_decoder_embeddings=True,
        layer_norm="standard",
        norm_eps=1e-5,  # torch.nn.LayerNorm's default, which we train with
        pos_ffn_activation_fn="relu",
        add_qkvbias=True,
        add_ffnbias=True,
        dropout=[0.0],
        attention_dropout=[0.0],
    )
    ArgumentParser.update_model_opts(opt)
    ArgumentParser.validate_model_opts(opt)
    return opt


def onmt_name(name: str) -> str:
    """Our parameter name -> OpenNMT-py's."""
    encoder = name.startswith("encoder.")
    replacements = [
        ("self_attn_layer_norm", "layer_norm" if encoder else "layer_norm_1"),
        ("encoder_attn_layer_norm", "layer_norm_2"),
        ("final_layer_norm", "feed_forward.layer_norm"),
        ("encoder.layers.", "encoder.transformer."),
        ("decoder.layers.", "decoder.transformer_layers."),
        ("encoder_attn.", "context_attn."),
        ("q_proj", "linear_query"),
        ("k_proj", "linear_keys"),
        ("v_proj", "linear_values"),
        ("out_proj", "final_linear"),
        ("ffn.fc1", "feed_forward.w_1"),
        ("ffn.fc2", "feed_forward.w_2"),
    ]
    for old, new in replacements:
        name = name.replace(old, new)
    return name


def build_checkpoint(bundle: Path) -> dict:
    config = json.loads((bundle / "config.json").read_text())["model"]
    if (config["norm"], config["norm_position"], config["tie_embeddings"]) != ("layernorm", "pre", True):
        raise SystemExit("only pre-norm LayerNorm models with tied embeddings convert")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(bundle / "spm.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    pieces[config["pad_id"]] = "<blank>"  # OpenNMT-py's padding token; ours are <unk> <s> </s> already
    if pieces[config["unk_id"]] != "<unk>" or pieces[config["bos_id"]] != "<s>" or pieces[config["eos_id"]] != "</s>":
        raise SystemExit("the SentencePiece model's special pieces are not <unk> <s> </s>")
    vocabs = dict_to_vocabs({"src": pieces, "tgt": pieces, "data_task": "seq2seq"})
    opt = model_options(config)
    model = build_base_model(opt, vocabs)
    state = model.state_dict()
    ours = load_file(str(bundle / "model.safetensors"))
    embedding = ours.pop("embedding.weight")
    converted = {f"{side}.embeddings.make_embedding.emb_luts.0.weight": embedding for side in ("encoder", "decoder")}
    converted["generator.weight"] = embedding
    converted["generator.bias"] = torch.zeros(embedding.size(0))
    for name, tensor in ours.items():
        if name.startswith("positional."):
            continue  # a fixed table: OpenNMT-py builds the same one
        target = onmt_name(name)
        if target not in state or state[target].shape != tensor.shape:
            raise SystemExit(f"no OpenNMT-py parameter for {name} (tried {target})")
        converted[target] = tensor
    unset = [k for k in state if k not in converted and not k.endswith(".pe.pe")]
    if unset:
        raise SystemExit(f"OpenNMT-py parameters left unset: {unset}")
    torch.nn.Module.load_state_dict(model, {**state, **converted})  # OpenNMT-py overrides it with a checkpoint loader
    full = model.state_dict()
    return {
        "model": {k: v for k, v in full.items() if not k.startswith("generator.")},
        "generator": {k[len("generator.") :]: v for k, v in full.items() if k.startswith("generator.")},
        "vocab": vocabs_to_dict(vocabs),
        "opt": opt,
    }


def translate_options(checkpoint: Path, src: Path, output: Path, beam: int, batch: int) -> argparse.Namespace:
    parser = ArgumentParser()
    opts.translate_opts(parser)
    args = ["-model", str(checkpoint), "-src", str(src), "-output", str(output), "-beam_size", str(beam)]
    args += ["-batch_size", str(batch), "-batch_type", "sents", "-ban_unk_token", "-gpu", "-1"]
    opt = parser.parse_args(args)
    ArgumentParser.validate_translate_opts(opt)
    ArgumentParser._get_all_transform_translate(opt)
    ArgumentParser._validate_transforms_opts(opt)
    ArgumentParser.validate_translate_opts_dynamic(opt)
    return opt


def main() -> None:
    args = baseline_arguments(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)  # OpenNMT-py logs every batch at INFO
    bundle = Path(args.model)
    sources, refs = test2016(args.data_dir)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(bundle / "spm.model"))
    results = {"model": str(bundle), "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.pt"
        torch.save(build_checkpoint(bundle), checkpoint)
        lines = [" ".join(sp.encode(s, out_type=str) + ["</s>"]) + "\n" for s in sources]  # EOS ends each source, as ours
        src, warmup, output = (Path(tmp) / name for name in ("test2016.pieces", "warmup.pieces", "hyp.pieces"))
        src.write_text("".join(lines), encoding="utf-8")
        warmup.write_text("".join(lines[:60]), encoding="utf-8")
        for name, beam, batch in COLUMNS:
            InferenceEnginePY(translate_options(checkpoint, warmup, output, beam, batch)).infer_file()
            engine = InferenceEnginePY(translate_options(checkpoint, src, output, beam, batch))
            started = time.perf_counter()
            engine.infer_file()
            speed = len(sources) / (time.perf_counter() - started)
            hyps = [sp.decode(line.split()) for line in output.read_text(encoding="utf-8").splitlines()]
            results[name] = {"sentences_per_s": round(speed, 1), "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)}
            print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
