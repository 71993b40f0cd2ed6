"""`xformer translate`: German lines in, English lines out (a Unix filter over the Translator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xformer_cli.cli.common import ModelOption, NoRepeatNgramOption, RevisionOption, ShortlistOption, model_ref, stderr, user_errors
from xformer_cli.errors import ConfigError


@user_errors
def translate(
    model: ModelOption = None,
    revision: RevisionOption = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Read this file instead of stdin.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write this file instead of stdout.")] = None,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-b", help="Beam width [default: the model's, 5].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy search (beam size 1).")] = False,
    length_penalty: Annotated[Optional[float], typer.Option(help="alpha in score = log P / length^alpha; 0 = raw log-probability.")] = None,
    max_len_a: Annotated[Optional[float], typer.Option(help="Output length cap: a * source pieces + b.")] = None,
    max_len_b: Annotated[Optional[int], typer.Option(help="See --max-len-a.")] = None,
    n_best: Annotated[Optional[int], typer.Option("--n-best", help="Print the K best translations per line, best first.")] = None,
    no_repeat_ngram: NoRepeatNgramOption = None,
    shortlist: ShortlistOption = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Sample one translation per sentence from the model instead of searching for the best (for back-translation, as "
            "fairseq's --sampling and Marian's --output-sampling). Beam 1; not with --greedy, --beam-size > 1 or --n-best > 1. A "
            "sentence's draws depend only on --seed and its text, not on batching; a sentence repeated in the input is sampled "
            "alike. --scores shows the model's untempered score.",
        ),
    ] = False,
    sample_topk: Annotated[
        Optional[int],
        typer.Option(
            "--sample-topk",
            help="With --sample: draw from the K most probable pieces at each step; 0 = the whole distribution [default: the model's, 0].",
        ),
    ] = None,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            "--temperature",
            help="With --sample: sample from p^(1/T), i.e. logits / T; below 1 sharper (towards greedy), above 1 flatter [default: "
            "the model's, 1.0].",
        ),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            help="With --sample: the seed of the draws; the same seed gives the same output on every run [default: the model's, 1].",
        ),
    ] = None,
    scores: Annotated[bool, typer.Option("--scores", help="Add a tab-separated score column.")] = False,
    batch_tokens: Annotated[Optional[int], typer.Option(help="Source pieces per batch.")] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="At most this many sentences per batch [default: no limit but --batch-tokens].")
    ] = None,
    split_sentences: Annotated[
        Optional[bool],
        typer.Option(
            "--split-sentences/--no-split-sentences", help="Translate a line sentence by sentence, joined back on one line [default: on]."
        ),
    ] = None,
    protect_spans: Annotated[
        Optional[bool],
        typer.Option(
            "--protect-spans/--no-protect-spans",
            help="Hold numbers, dates, URLs, e-mail addresses, emoji and symbols (arrows, mathematical signs) back from the model "
            "and put them back as written, except what an English reader would misread: a decimal comma becomes a point "
            "(2,3 -> 2.3), thousands points commas (1.500 -> 1,500), a date with a German month name English "
            "(1. Januar 2027 -> 1 January 2027); dates in digits, times, versions and anything ambiguous stay [default: on].",
        ),
    ] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Translate and flush each line as it arrives.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Batches translated at once, each in a worker process of its own with threads/workers CPU threads, all sharing one "
            "copy of the model (Linux; threads on a GPU or without fork); N workers of 1 thread is fastest on N cores. Streaming "
            "goes line by line, with one."
        ),
    ] = 1,
    quantize: Annotated[Optional[str], typer.Option(help="int8: dynamic int8 linear layers (CPU).")] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="xformer: the own search; ctranslate2: CTranslate2's, on the model exported once into a cache folder (CPU; "
            "pip install 'xformer-cli[ctranslate2]'), with the same splitting, spans and output.",
        ),
    ] = "xformer",
    attention_plot: Annotated[Optional[Path], typer.Option(help="Draw the first line's encoder attention as a PNG heatmap.")] = None,
    target_lang: Annotated[
        Optional[str],
        typer.Option(
            "--target-lang",
            help="The language to translate into, for a model with several (an imported multi-target OPUS-MT model): its "
            ">>xxx<< tag goes in front of every line that has none (uk, ukr -> >>ukr<<) [default: a line's own tag, else none]. "
            "For a model with one target language only that language is accepted.",
        ),
    ] = None,
    check_tags: Annotated[
        bool,
        typer.Option(
            "--check-tags",
            help="Files with inline tags (HTML, Markdown, Word): narrow a tag the attention spread over several English words to "
            "those the model needs the tagged German words for, by reading each such sentence again with those words hidden. "
            "More tags land right (89% against 84% of unseen hand-tagged sentences), at about 1.35x the time of a tag-dense file.",
        ),
    ] = False,
    inline_tags: Annotated[
        Optional[str],
        typer.Option(
            "--inline-tags",
            help="Files with inline tags: who places a tag in the translation. attention: the model translates the plain "
            "sentence and the tag follows its attention; model: the tags are written into the sentence and the model writes "
            "them into its translation (a model trained to, models/de-en-tags.toml; a tag it loses follows the attention) "
            "[default: the model's, attention].",
        ),
    ] = None,
    format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help="What the input is: text (lines), srt, vtt, markdown, html, docx or po [default: by the input's file name ending "
            "(.srt .vtt .md .html .htm .docx .po), else text]. A file with structure is translated whole and written whole, its "
            "structure (timecodes, tags, code, placeholders, formatting) kept.",
        ),
    ] = None,
) -> None:
    """Translate German lines from stdin (or --input) to English lines on stdout (or --output);
    subtitles, Markdown, HTML, Word and gettext files with their structure kept."""
    from xformer_cli.documents import format_for

    if greedy and sample:
        raise ConfigError("--greedy and --sample exclude each other: choose one")
    fmt = format_for(str(input) if input else None, format)
    options = dict(
        beam_size=1 if greedy else beam_size, length_penalty=length_penalty, max_len_a=max_len_a, max_len_b=max_len_b,
        n_best=n_best, no_repeat_ngram=no_repeat_ngram, batch_tokens=batch_tokens, batch_size=batch_size,
        split_sentences=split_sentences, protect_spans=protect_spans, sample=sample or None, sample_topk=sample_topk,
        temperature=temperature, seed=seed, check_tags=check_tags or None, shortlist=shortlist, inline_tags=inline_tags,
    )  # fmt: skip
    if fmt == "text" and (check_tags or inline_tags):
        flag = "--check-tags" if check_tags else "--inline-tags"
        raise ConfigError(f"{flag} is for files with inline tags (html, markdown, docx), not text lines")
    if fmt != "text":
        for flag, given in (
            ("--n-best", n_best and n_best > 1),
            ("--scores", scores),
            ("--stream", stream),
            ("--attention-plot", attention_plot),
            ("--target-lang", target_lang),
        ):
            if given:
                raise ConfigError(f"{flag} is for text lines, not a {fmt} file")
        return translate_document_file(model_ref(model), revision, input, output, fmt, device, threads, workers, quantize, options, engine)
    from xformer_cli.decoding.unix_filter import run_filter

    run_filter(
        model_ref(model),
        revision,
        input,
        output,
        stream=stream,
        device=device,
        threads=threads,
        workers=workers,
        show_scores=scores,
        options=options,
        console=stderr(),
        quantize=quantize,
        attention_plot=attention_plot,
        engine=engine,
        target_lang=target_lang,
    )


def translate_document_file(
    model: str, revision: str | None, input: Path | None, output: Path | None, fmt: str, device: str, threads: int | None,
    workers: int, quantize: str | None, options: dict, engine: str = "xformer",
) -> None:  # fmt: skip
    """A file with structure (or stdin) translated whole into --output (written whole, or not at
    all) or stdout."""
    import sys

    from xformer_cli.decoding.translator import Translator, share_threads
    from xformer_cli.documents import translate_document, write_atomically
    from xformer_cli.errors import DocumentError

    try:
        data = input.read_bytes() if input else sys.stdin.buffer.read()
    except OSError as err:
        raise DocumentError(f"cannot read {input}: {err.strerror}") from None
    console = stderr()
    translator = Translator.load(model, revision, device, quantize, workers, engine)
    with translator:
        share_threads(threads, workers)
        config = translator.config(**options)
        console.print(f"xformer: model {translator.bundle.path}, device {translator.device}, {fmt}", highlight=False)
        result = translate_document(data, fmt, translator, config, str(input) if input else "<stdin>")
    if output:
        write_atomically(output, result)
    else:
        sys.stdout.buffer.write(result)
        sys.stdout.buffer.flush()
