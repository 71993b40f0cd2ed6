import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from conftest import MIN_MARGIN, assert_one_line_error, reference_search
from typer.testing import CliRunner

from xformer_cli import __version__
from xformer_cli.cli.app import app
from xformer_cli.devices import resolve_device

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(map(str, args)), input=input)


def assert_clear_decisions(bundle_dir, text: str, beam_size: int | None = None) -> None:
    """Every decision of the bundle's default search on the lines of `text` beats its runner-up by
    MIN_MARGIN: then outputs computed in batches of other shapes (which round differently) must be
    equal to the character, on any CPU. True of the stored fixture bundle on the lines used here."""
    from xformer_cli.bundles.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    config = replace(bundle.decode, beam_size=beam_size or bundle.decode.beam_size)
    lines = [line for line in text.splitlines() if line]
    margins = [reference_search(bundle.model, ids, config)[1] for ids in bundle.tokenizer.encode(lines)]
    assert min(margins) >= MIN_MARGIN, dict(zip(lines, margins))


def test_help_texts_keep_their_bracketed_defaults():
    """Help is plain text: "[default: ...]" is not swallowed as markup."""
    result = run("translate", "--help")
    assert "[default: the shipped model]" in " ".join(result.stdout.split())
    assert "[default: on]" in " ".join(result.stdout.split())


def test_version_and_help():
    assert run("--version").stdout.strip() == f"xformer {__version__}"
    for flag in ("-h", "--help"):
        result = run(flag)
        assert result.exit_code == 0
        for command in ("train", "translate", "evaluate", "push", "info"):
            assert command in result.stdout


def test_translate_is_a_filter_with_one_line_per_input_line(trained_bundle_dir):
    result = run("translate", "-m", trained_bundle_dir, "--greedy", input="Ich habe Hunger.\n\nTom ist hier.\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[3] == ""  # three lines, newline-terminated
    assert lines[1] == ""  # an empty line gives an empty line
    assert lines[0] and lines[2]
    assert f"device {resolve_device('auto')}" in result.stderr  # cuda where there is one


def test_translate_files_nbest_and_scores(trained_bundle_dir, tmp_path):
    source = tmp_path / "in.de"
    source.write_text("Ich habe Hunger.\nTom ist hier.\n", encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", source, "-o", tmp_path / "out.en", "-b", "4", "--n-best", "3", "--scores")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = (tmp_path / "out.en").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6  # 3 per input line, blocks in input order
    scores = [float(line.split("\t")[1]) for line in lines]
    assert scores[:3] == sorted(scores[:3], reverse=True) and scores[3:] == sorted(scores[3:], reverse=True)


def test_batch_size_caps_sentences_without_changing_output(trained_bundle_dir):
    text = "Ich habe Hunger.\nTom ist hier.\nWo ist der Bahnhof?\n"
    assert_clear_decisions(trained_bundle_dir, text)
    whole = run("translate", "-m", trained_bundle_dir, input=text)
    ones = run("translate", "-m", trained_bundle_dir, "--batch-size", "1", input=text)
    assert whole.exit_code == ones.exit_code == 0
    assert ones.stdout == whole.stdout and len(ones.stdout.splitlines()) == 3
    assert_one_line_error(run("translate", "-m", trained_bundle_dir, "--batch-size", "-1", input=text), "batch size must be 0")


def test_workers_translate_batches_at_once_without_changing_output(trained_bundle_dir):
    text = "".join(f"{s}\n" for s in ["Ich habe Hunger.", "Tom ist hier.", "", "Wo ist der Bahnhof?", "Danke!"] * 3)
    assert_clear_decisions(trained_bundle_dir, text)
    one = run("translate", "-m", trained_bundle_dir, "--batch-size", "2", "--device", "cpu", input=text)
    two = run("translate", "-m", trained_bundle_dir, "--batch-size", "2", "--workers", "2", "--threads", "2", "--device", "cpu", input=text)
    assert two.exit_code == 0, two.output
    assert two.stdout == one.stdout and len(two.stdout.splitlines()) == 15
    assert "2 workers x 1 thread(s) in processes" in two.stderr
    assert_one_line_error(
        run("translate", "-m", trained_bundle_dir, "--workers", "0", "--threads", "2", input=text), "workers must be at least 1"
    )
    assert_one_line_error(
        run("translate", "-m", trained_bundle_dir, "--workers", "0", "--stream", input=text), "workers must be at least 1"
    )
    nbest = ["--beam-size", "3", "--n-best", "3", "--scores", "--batch-size", "1", "--device", "cpu"]  # worker processes: the CPU's
    two_nbest = run("translate", "-m", trained_bundle_dir, *nbest, "--workers", "2", input=text)
    assert two_nbest.exit_code == 0 and two_nbest.stdout == run("translate", "-m", trained_bundle_dir, *nbest, input=text).stdout
    assert len(two_nbest.stdout.splitlines()) == 45 and multiprocessing.active_children() == []  # the processes ended with the command


def test_an_error_in_a_worker_process_is_the_same_one_line_error_as_with_one_worker(trained_bundle_dir, monkeypatch):
    from xformer_cli.decoding import translator
    from xformer_cli.errors import DataError

    def failing_search(model, src, config, project, shortlist):
        raise DataError("the search failed here")

    monkeypatch.setattr(translator, "search", failing_search)  # inherited by the forked workers
    text = "Ich habe Hunger.\nTom ist hier.\nWo ist der Bahnhof?\n"
    results = [run("translate", "-m", trained_bundle_dir, "--batch-size", "1", "--workers", str(workers), input=text) for workers in (1, 2)]
    for result in results:  # the opening log line, then the error
        assert result.exit_code == 1 and result.stdout == "" and "Traceback" not in result.output, result.output
        assert result.stderr.strip().splitlines()[1:] == ["error: the search failed here"], result.stderr
    assert "2 workers" in results[1].stderr and multiprocessing.active_children() == []


def session_processes(session: int) -> list[str]:
    """'pid state' of every process in a session (from /proc), zombies included."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after the command name: state, ppid, pgrp, session, ...
        if entry.isdigit() and int(fields[3]) == session:
            found.append(f"{entry} {fields[0]}")
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked: Linux only")
def test_ctrl_c_ends_the_worker_processes_quickly_with_status_130(trained_bundle_dir, tmp_path):
    """Ctrl-C in a terminal goes to the whole process group: the workers ignore it, the command
    ends them and exits with 130 and one line, no traceback from anyone, no process left."""
    source = tmp_path / "in.de"
    source.write_text("Ich habe Hunger. Tom ist hier.\nWo ist der Bahnhof?\n" * 5000)
    command = [
        sys.executable,
        "-m",
        "xformer_cli",
        "translate",
        "-m",
        str(trained_bundle_dir),
        "-i",
        str(source),
        "-o",
        str(tmp_path / "out.en"),
        "--beam-size",
        "5",
        "--batch-size",
        "1",
        "--workers",
        "2",
        "--threads",
        "2",
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under a background job
    )
    try:
        started = time.monotonic()
        while len(session_processes(process.pid)) < 3 and time.monotonic() - started < 120:  # the command and its two workers
            time.sleep(0.1)
        assert len(session_processes(process.pid)) == 3 and process.poll() is None, session_processes(process.pid)
        time.sleep(1.0)  # in the middle of translating
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        stderr = process.communicate(timeout=30)[1].decode()
        assert time.monotonic() - interrupted < 5
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert session_processes(process.pid) == []


def test_invalid_utf8_is_replaced_with_a_warning(trained_bundle_dir):
    result = runner.invoke(app, ["translate", "-m", str(trained_bundle_dir), "--greedy"], input=b"gut\n\xff\xfe kaputt\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert "line 2: invalid UTF-8" in result.stderr


def greedy_parts(bundle_dir, text: str) -> list[str]:
    """The greedy translations of `text` cut into parts the model takes (max_pieces pieces each),
    each part searched alone by the plain reference search, whose decisions must be clear."""
    from xformer_cli.bundles.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    ids, size = bundle.tokenizer.encode([text])[0], bundle.model.config.max_pieces
    config = replace(bundle.decode, beam_size=1)
    found = [reference_search(bundle.model, ids[start : start + size], config) for start in range(0, len(ids), size)]
    assert min(margin for _, margin in found) >= MIN_MARGIN
    return bundle.tokenizer.decode([hyps[0].tokens for hyps, _ in found])


def test_over_long_lines_are_translated_whole_not_cut(trained_bundle_dir):
    """A line of many sentences, far beyond the tiny model's 64 positions, is translated sentence by
    sentence, quietly; a single sentence as long is cut into parts, each translated, with one warning."""
    sentences = " ".join(["Ich habe Hunger."] * 40)
    run_on = " ".join(["Ich habe Hunger"] * 40)  # no sentence end: one sentence of 320 pieces
    result = run("translate", "-m", trained_bundle_dir, "--greedy", input=f"Tom ist hier.\n{sentences}\n{run_on}\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert result.stderr.count("warning") == 1 and "line 3" in result.stderr and "5 parts" in result.stderr
    assert_clear_decisions(trained_bundle_dir, "Ich habe Hunger.", beam_size=1)
    short = run("translate", "-m", trained_bundle_dir, "--greedy", input="Ich habe Hunger.\n").stdout.strip()
    assert short and lines[1] == " ".join([short] * 40)  # each sentence translated
    assert lines[2] == " ".join(" ".join(greedy_parts(trained_bundle_dir, run_on)).split())  # every part, joined


def test_info_shows_parameters_and_vocabulary(bundle_dir, tiny_bundle):
    from xformer_cli.model.transformer import count_parameters

    result = run("info", bundle_dir)
    assert result.exit_code == 0, result.output
    assert f"{count_parameters(tiny_bundle.model):,}" in result.stdout
    assert f"{tiny_bundle.tokenizer.vocab_size:,} SentencePiece pieces" in result.stdout


def test_missing_model_path(tmp_path):
    assert_one_line_error(run("info", tmp_path / "missing"), "model not found")


def test_unknown_hub_id_while_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert_one_line_error(run("translate", "-m", "nobody/no-such-model", input="Hallo\n"), "nobody/no-such-model", "HF_HUB_OFFLINE")


def test_corrupt_safetensors_file(bundle_dir, tmp_path):
    copy = tmp_path / "bad"
    shutil.copytree(bundle_dir, copy)
    (copy / "model.safetensors").write_bytes(b"not safetensors at all")
    assert_one_line_error(run("info", copy), "corrupt weights file")


def test_weights_not_matching_the_config(bundle_dir, tmp_path):
    copy = tmp_path / "mismatch"
    shutil.copytree(bundle_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["model"]["n_decoder_layers"] = 3
    (copy / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run("info", copy), "weights do not match the config", "decoder.layers.2")


def test_unknown_preset(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    assert_one_line_error(run("train", "--src", src, "--tgt", tgt, "--preset", "huge", "--out", tmp_path / "run"), "unknown preset 'huge'")


def test_as_a_real_process_stdout_has_only_translations(trained_bundle_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "xformer_cli", "translate", "-m", str(trained_bundle_dir), "-b", "2"],
        input="Ich habe Hunger.\nTom ist hier.\n".encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.decode().splitlines()) == 2
    missing = subprocess.run([sys.executable, "-m", "xformer_cli", "info", "/nonexistent/model"], capture_output=True, env=env, timeout=120)
    assert missing.returncode == 1
    assert missing.stderr.decode().strip().startswith("error:") and b"Traceback" not in missing.stderr


def test_attention_plot_and_int8(trained_bundle_dir, tmp_path):
    plot = tmp_path / "attention.png"
    result = run(
        "translate",
        "-m",
        trained_bundle_dir,
        "--attention-plot",
        plot,
        "--quantize",
        "int8",
        "--device",
        "cpu",
        input="Ich habe Hunger.\nTom ist hier.\n",
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 and "int8" in result.stderr
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cross_attention_rows_are_distributions(trained_bundle_dir):
    import torch

    from xformer_cli.bundles.bundle import load_bundle
    from xformer_cli.decoding.attention_plot import cross_attention

    bundle = load_bundle(trained_bundle_dir)
    src, tgt = bundle.tokenizer.encode(["Ich habe Hunger.", "I'm hungry."])
    weights = cross_attention(bundle.model, src, tgt)
    assert weights.shape == (len(tgt) + 1, len(src) + 1)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(tgt) + 1))


def test_push_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    assert_one_line_error(run("push", tmp_path, "you/model"), "not a model bundle")


def test_push_while_offline_is_a_clear_error(bundle_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert_one_line_error(run("push", bundle_dir, "you/model"), "cannot push to 'you/model'")


def test_control_characters_and_long_runs_do_not_hang(trained_bundle_dir):
    text = "\x00\x07\x1b[31m rot\n" + "a" * 3000 + "\n" + "!" * 500 + "\n"
    result = run("translate", "-m", trained_bundle_dir, "-b", "2", input=text)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split("\n")) == 4


def test_stream_mode_gives_the_same_lines(trained_bundle_dir):
    text = "Ich habe Hunger.\nTom ist hier.\n\nDanke!\n"
    assert_clear_decisions(trained_bundle_dir, text)
    batched = run("translate", "-m", trained_bundle_dir, "-b", "3", input=text)
    streamed = run("translate", "-m", trained_bundle_dir, "-b", "3", "--stream", input=text)
    assert streamed.exit_code == 0 and streamed.stdout == batched.stdout


def test_translate_samples_one_seeded_line_per_line(trained_bundle_dir):
    """--sample draws the same lines for the same seed, other lines for another seed, one per
    input line; top-k 1 is greedy (the same loop on the same batches, so equal on any weights)."""
    text = "Ich habe Hunger.\nTom ist hier.\n\nDas ist gut.\n"
    first, again, other = (
        run("translate", "-m", trained_bundle_dir, "--sample", "--sample-topk", "10", "--seed", seed, input=text) for seed in (17, 17, 18)
    )
    assert first.exit_code == 0, first.output
    assert "sampling (top-k 10, temperature 1, seed 17)" in first.stderr
    assert first.stdout == again.stdout and len(first.stdout.split("\n")) == 5 and first.stdout.split("\n")[2] == ""
    assert other.stdout != first.stdout
    top1 = run("translate", "-m", trained_bundle_dir, "--sample", "--sample-topk", "1", "--temperature", "2", input=text)
    assert top1.stdout == run("translate", "-m", trained_bundle_dir, "--greedy", input=text).stdout


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sample", "--temperature", "0"], "temperature must be a positive number (got 0.0)"),
        (["--sample", "--temperature", "-1"], "temperature must be a positive number (got -1.0)"),
        (["--sample", "--sample-topk", "-1"], "sample top-k must be 0 (the whole distribution) or positive (got -1)"),
        (["--sample", "--seed", "-1"], "seed must be between 0 and 2**63 - 1 (got -1)"),
        (["--sample", "-b", "4"], "sampling draws one translation per sentence: beam size must be 1 (got 4)"),
        (["--sample", "--n-best", "2"], "sampling draws one translation per sentence: n-best must be 1 (got 2)"),
        (["--sample", "--greedy"], "--greedy and --sample exclude each other"),
        (["--temperature", "0.5"], "apply only to sampling"),
        (["--sample-topk", "5"], "apply only to sampling"),
    ],
)
def test_bad_sampling_flags_are_one_line_errors(trained_bundle_dir, flags, message):
    assert_one_line_error(run("translate", "-m", trained_bundle_dir, *flags, input="Ich habe Hunger.\n"), message)


def test_sampling_flags_are_documented():
    text = " ".join(run("translate", "--help").stdout.split())
    for flag in ("--sample ", "--sample-topk", "--temperature", "--seed"):
        assert flag in text
    assert "not with --greedy, --beam-size > 1 or --n-best > 1" in text
