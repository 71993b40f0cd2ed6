"""`xformer translate` as a Unix filter: lines in, exactly one translation (or n-best block) out
per line, in input order; batched unless streaming."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import LineWarning, Translator, check_workers, share_threads
from xformer_cli.progress import LinesProgress
from xformer_cli.text.language_tags import with_language_tag

CHUNK_LINES = 5000  # lines read, sorted and batched at a time when not streaming


def decode_lines(stream: IO[bytes], warn) -> Iterator[str]:
    """UTF-8 lines without their newline; bytes that are not UTF-8 are replaced (with a warning)."""
    for number, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            warn(LineWarning(number, "invalid UTF-8 bytes replaced with U+FFFD"))
        yield line.strip()


def chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_filter(
    model: str,
    revision: str | None,
    input_path: Path | None,
    output_path: Path | None,
    *,
    stream: bool,
    device: str,
    threads: int | None,
    show_scores: bool,
    workers: int = 1,
    options: dict[str, Any],
    console,
    quantize: str | None = None,
    attention_plot: Path | None = None,
    engine: str = "xformer",
    target_lang: str | None = None,
) -> None:
    import torch

    interactive = stream or (input_path is None and sys.stdin.isatty())
    check_workers(workers)  # also where streaming uses one
    parallel = 1 if interactive else workers  # streaming goes one line at a time: nothing to share out
    translator = Translator.load(model, revision, device, quantize, parallel, engine)
    with translator:  # ends the worker processes, on an error or Ctrl-C too
        share_threads(threads, parallel)
        config = translator.config(**options)
        tag = translator.target_tag(target_lang) if target_lang else ""
        console.print(
            f"xformer: model {translator.bundle.path}, device {translator.device}{', int8' if quantize else ''}, {search_name(config)}"
            + (", engine ctranslate2" if engine == "ctranslate2" else "")
            + (f", {parallel} workers x {torch.get_num_threads()} thread(s) in {translator.worker_kind}" if parallel > 1 else ""),
            highlight=False,
        )
        translate_stream(
            translator,
            config,
            input_path,
            output_path,
            interactive=interactive,
            show_scores=show_scores,
            console=console,
            attention_plot=attention_plot,
            target_tag=tag,
        )


def translate_stream(
    translator: Translator,
    config: DecodeConfig,
    input_path: Path | None,
    output_path: Path | None,
    *,
    interactive: bool,
    show_scores: bool,
    console,
    attention_plot: Path | None,
    target_tag: str = "",
) -> None:
    """Lines of the input (a file, else stdin) to translations on the output (a file, else stdout):
    one line at a time when interactive, else in chunks of CHUNK_LINES. `target_tag` (a
    multi-target model's `>>xxx<<`) goes in front of each line that has no tag of its own."""

    def warn(message: LineWarning | str) -> None:
        console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    try:
        source = open(input_path, "rb") if input_path else sys.stdin.buffer
    except OSError as err:
        from xformer_cli.errors import DataError

        raise DataError(f"cannot read {input_path}: {err.strerror}") from None
    if output_path:
        sink = open(output_path, "w", encoding="utf-8")
    else:
        sink = sys.stdout
        if hasattr(sink, "reconfigure"):
            sink.reconfigure(encoding="utf-8")
    offset = 0
    try:
        with LinesProgress(None if interactive else console) as progress:  # a bar for long inputs, on stderr only
            for chunk in chunks(decode_lines(source, warn), 1 if interactive else CHUNK_LINES):
                numbered_warn = lambda w, base=offset: warn(replace(w, line=w.line + base))  # noqa: E731  lines of the whole input
                if target_tag:
                    chunk = [with_language_tag(line, target_tag, translator.tokenizer.language_tags.values()) for line in chunk]
                results = translator.translate_nbest(chunk, config, numbered_warn)
                if attention_plot is not None and offset == 0:
                    draw_attention(translator, chunk[0], results[0][0].text, attention_plot, warn)
                for nbest in results:
                    for hyp in nbest[: config.n_best]:
                        sink.write(f"{hyp.text}\t{hyp.score:.4f}\n" if show_scores else hyp.text + "\n")
                sink.flush()
                offset += len(chunk)
                progress.update(offset)
    finally:
        if input_path:
            source.close()
        if output_path:
            sink.close()


def search_name(config: DecodeConfig) -> str:
    """How the translations are found, for the opening log line."""
    if config.sample:
        return f"sampling (top-k {config.sample_topk or 'all'}, temperature {config.temperature:g}, seed {config.seed})"
    return f"beam {config.beam_size}"


def draw_attention(translator: Translator, source: str, translation: str, path: Path, warn) -> None:
    """Heatmap of the first line's encoder attention (its source and translated pieces)."""
    from xformer_cli.decoding.attention_plot import cross_attention, plot_attention

    tokenizer = translator.tokenizer
    src_ids, tgt_ids = tokenizer.encode([source])[0], tokenizer.encode_target([translation])[0]
    limit = translator.model.config.max_pieces
    if not src_ids or len(src_ids) > limit or len(tgt_ids) > limit:
        warn("line 1 is empty or too long to draw its attention; no plot written")
        return
    model = translator.bundle.model  # the float model (weights are recorded on the reference path)
    weights = cross_attention(model, src_ids, tgt_ids)
    plot_attention(weights, tokenizer.pieces(src_ids) + ["</s>"], tokenizer.pieces(tgt_ids) + ["</s>"], path)
