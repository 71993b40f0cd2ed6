import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error
from typer.testing import CliRunner

from xformer_cli.batching import collate
from xformer_cli.bundles.bundle import load_bundle, with_tag_piece
from xformer_cli.cli.app import app
from xformer_cli.model import build_model
from xformer_cli.model.config import preset
from xformer_cli.text.files import read_lines
from xformer_cli.text.tokenizer import train_tokenizer
from xformer_cli.training.checkpoint import atomic_write, average_states
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.loss import backward_accumulated
from xformer_cli.training.trainer import inverse_sqrt_lr

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("corpus_cache")  # every test encodes into a cache of its own (tests/conftest.py)


def ENV() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def tiny_args(src, tgt, out, *extra):
    return [
        "train",
        "--src",
        str(src),
        "--tgt",
        str(tgt),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--vocab-size",
        "500",
        "--batch-tokens",
        "600",
        "--threads",
        "1",
        "--seed",
        "3",
        *map(str, extra),
    ]


def run(*args):
    return runner.invoke(app, list(map(str, args)))


def losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_schedule_warms_up_linearly_then_decays_with_inverse_square_root():
    assert inverse_sqrt_lr(50, 1e-3, 100) == pytest.approx(5e-4)
    assert inverse_sqrt_lr(100, 1e-3, 100) == pytest.approx(1e-3)
    assert inverse_sqrt_lr(400, 1e-3, 100) == pytest.approx(5e-4)


def test_training_ends_with_a_bundle_metrics_curves_and_a_card(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    result = run(
        *tiny_args(src, tgt, out, "--max-steps", 20, "--valid-every", 10, "--log-every", 5), "--valid-src", src, "--valid-tgt", tgt
    )
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out / "bundle")
    assert bundle.model.config.d_model == 32
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "valid_bleu" in r] == [10, 20]
    assert losses(out)[20] < losses(out)[5]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    card = (out / "bundle" / "README.md").read_text()
    assert "library_name: xformer" in card and "nrefs:1" in card and "tok:13a" in card
    assert f"greedy on all {len(src.read_text().splitlines())} valid sentences" in card
    assert "dropped 0 empty" in result.stderr


def test_killed_run_resumes_on_the_same_loss_trajectory(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run(*tiny_args(src, tgt, straight, "--max-steps", 24, "--save-every", 8, "--log-every", 1)).exit_code == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "xformer_cli", *tiny_args(src, tgt, killed, "--max-steps", 100000, "--save-every", 8, "--log-every", 1)],
        env=ENV(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list((killed / "checkpoints").glob("step-0000016*")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((killed / "checkpoints").glob("step-0000016*")), "no checkpoint before the kill"

    result = run(*tiny_args(src, tgt, killed, "--max-steps", 24, "--save-every", 8, "--log-every", 1), "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed from step-" in result.stderr
    expected, got = losses(straight), losses(killed)
    assert sorted(got) == list(range(1, 25))
    for step in range(1, 25):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def stop_training(src, tgt, out: Path, sigint: signal.Handlers, stop: signal.Signals) -> bytes:
    """Start training in a subprocess with SIGINT set to `sigint`, send `stop` once it has logged
    an update, and return its stderr after checking it saved a checkpoint and exited with 130."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xformer_cli", *tiny_args(src, tgt, out, "--max-steps", 100000, "--log-every", 1)],
        env=ENV(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"checkpoint saved" in err and b"Traceback" not in err
    assert list((out / "checkpoints").glob("step-*.safetensors"))
    return err


def test_ctrl_c_saves_a_checkpoint(tiny_corpus, tmp_path):
    # A shell starts background jobs with SIGINT ignored, and children inherit that: give the
    # trainer the default disposition, as a command run in a terminal has, so Ctrl-C reaches it.
    stop_training(*tiny_corpus, tmp_path / "run", signal.SIG_DFL, signal.SIGINT)


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tiny_corpus, tmp_path):
    # Started the way a background job is: SIGINT ignored, so `kill` (SIGTERM) is how it stops.
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    stop_training(src, tgt, out, signal.SIG_IGN, signal.SIGTERM)
    saved = max(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("step-*.safetensors"))
    result = run(*tiny_args(src, tgt, out, "--max-steps", saved + 2, "--log-every", 1), "--resume")
    assert result.exit_code == 0, result.output
    assert f"resumed from step-{saved:07d}" in result.stderr


def test_two_runs_do_not_share_a_folder(tiny_corpus, tmp_path):
    from filelock import FileLock

    src, tgt = tiny_corpus
    out = tmp_path / "run"
    out.mkdir()
    with FileLock(out / ".lock", timeout=0):  # a portable lock, as the trainer takes it
        assert_one_line_error(run(*tiny_args(src, tgt, out, "--max-steps", 2)), "another training run is using")
    assert run(*tiny_args(src, tgt, out, "--max-steps", 2)).exit_code == 0  # free again


def test_a_finished_folder_needs_resume(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    assert run(*tiny_args(src, tgt, out, "--max-steps", 2)).exit_code == 0
    assert_one_line_error(run(*tiny_args(src, tgt, out, "--max-steps", 2)), "already holds checkpoints")


def test_resume_with_a_changed_model_config_says_what_differs(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    assert run(*tiny_args(src, tgt, out, "--max-steps", 2)).exit_code == 0
    assert_one_line_error(
        run(*tiny_args(src, tgt, out, "--max-steps", 4, "--norm", "rmsnorm"), "--resume"), "norm: 'layernorm' -> 'rmsnorm'"
    )


def test_line_counts_differ(tiny_corpus, tmp_path):
    src, _ = tiny_corpus
    short = tmp_path / "short.en"
    short.write_text("one\ntwo\n")
    assert_one_line_error(run(*tiny_args(src, short, tmp_path / "run")), "line counts differ", "400 in", "2 in", str(short))


def test_empty_corpus(tmp_path):
    empty_src, empty_tgt = tmp_path / "e.de", tmp_path / "e.en"
    empty_src.write_text("")
    empty_tgt.write_text("")
    assert_one_line_error(run(*tiny_args(empty_src, empty_tgt, tmp_path / "run")), "empty corpus")


def test_a_line_that_is_not_utf8_is_named(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    bad = tmp_path / "bad.de.gz"
    lines = src.read_bytes().split(b"\n")
    lines[6] = b"kaputt \xff\xfe"
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    assert_one_line_error(run(*tiny_args(bad, tgt, tmp_path / "run")), str(bad), "line 7", "not valid UTF-8")


def test_unknown_recipe_key_is_named(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('preset = "tiny"\n[train]\nmax_stepz = 3\n')
    assert_one_line_error(run("train", "--config", recipe, "--out", tmp_path / "run"), "unknown key 'max_stepz'")


def test_unwritable_out(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(run(*tiny_args(src, tgt, blocker / "run")), "cannot write to --out")


def test_recipe_values_and_flag_overrides(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'preset = "tiny"\n[model]\nvocab_size = 500\nnorm = "dyt"\n'
        f'[train]\nsrc = "{src}"\ntgt = "{tgt}"\nmax_steps = 50\nbatch_tokens = 600\nthreads = 1\n'
    )
    out = tmp_path / "run"
    result = run("train", "--config", recipe, "--out", out, "--max-steps", 3, "--norm-position", "pre")
    assert result.exit_code == 0, result.output
    config = load_bundle(out / "bundle").model.config
    assert (config.norm, config.norm_position) == ("dyt", "pre")
    assert "stopped at step 3" in result.stderr


def test_checkpoint_average_is_the_mean():
    a = {"w": torch.tensor([1.0, 2.0])}
    b = {"w": torch.tensor([3.0, 6.0])}
    assert torch.equal(average_states([a, b])["w"], torch.tensor([2.0, 4.0]))


def test_atomic_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    target = tmp_path / "spm.model"
    target.write_text("old")
    old_umask = os.umask(0o022)
    try:
        atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["spm.model"]  # no temporary file left


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")

    def half_written(tmp: str) -> None:
        Path(tmp).write_text("ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, half_written)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_data_parallel_training_with_torchrun_on_cpu(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            "-m",
            "xformer_cli",
            *tiny_args(src, tgt, out, "--max-steps", 6, "--save-every", 3, "--log-every", 3, "--device", "cpu"),
        ],
        env=ENV(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "2 processes" in done.stderr.decode()
    assert done.stderr.decode().count("stopped at step 6") == 1  # rank 0 alone logs
    assert done.stderr.decode().count("encoded tiny: 400 pairs") == 1
    assert sorted(losses(out)) == [3, 6]
    load_bundle(out / "bundle")


def test_data_parallel_training_with_subword_sampling_encodes_each_epoch_once_on_rank_0(tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29521",
            "-m",
            "xformer_cli",
            *tiny_args(src, tgt, out, "--max-steps", 12, "--log-every", 1, "--device", "cpu", "--subword-alpha", 0.1),
        ],
        env=ENV(),
        capture_output=True,
        timeout=300,
    )
    err = done.stderr.decode()
    assert done.returncode == 0, err[-2000:]
    assert "2 processes" in err and err.count("stopped at step 12") == 1
    for epoch in (1, 2):  # rank 0 encoded each epoch once; rank 1 waited and mapped it (and logs nothing)
        assert err.count(f"epoch {epoch}: sampled segmentation (subword_alpha 0.1), encoded in ") == 1, err[-2000:]
    epochs = {json.loads(line).get("epoch") for line in (out / "metrics.jsonl").read_text().splitlines()}
    assert {1, 2} <= epochs and sorted(losses(out)) == list(range(1, 13))
    assert len([p for p in (corpus_cache / "corpora").iterdir() if p.is_dir()]) == 1
    load_bundle(out / "bundle")


def test_early_stopping_after_patience_validations_without_a_better_bleu(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    # With a learning rate of 0 the weights never change, so validation BLEU is the same at every
    # validation on any CPU: the first sets the best, the next two are not better, patience 2 stops.
    result = run(
        *tiny_args(src, tgt, out, "--max-steps", 100, "--lr", 0, "--valid-every", 2, "--save-every", 2, "--patience", 2),
        "--valid-src",
        src,
        "--valid-tgt",
        tgt,
    )
    assert result.exit_code == 0, result.output
    assert "stopped at step 6: no better validation BLEU in 2 validations" in result.stderr


def test_checkpoint_averaging_bundles_the_mean_of_the_last_checkpoints(tiny_corpus, tmp_path):
    from safetensors.torch import load_file

    from xformer_cli.training.checkpoint import load_checkpoint, model_state

    src, tgt = tiny_corpus
    out = tmp_path / "run"
    result = run(*tiny_args(src, tgt, out, "--max-steps", 8, "--save-every", 2, "--average-last", 3, "--accumulate", 2))
    assert result.exit_code == 0, result.output
    paths = sorted((out / "checkpoints").glob("step-*.safetensors"))[-3:]
    assert [p.stem for p in paths] == ["step-0000004", "step-0000006", "step-0000008"]
    states = [model_state(load_checkpoint(p)[0]) for p in paths]
    expected = average_states(states)
    bundled = load_file(str(out / "bundle" / "model.safetensors"))
    assert not torch.equal(states[0]["embedding.weight"], states[2]["embedding.weight"])  # they differ
    for name, tensor in expected.items():
        torch.testing.assert_close(bundled[name], tensor)


def test_resuming_a_finished_run_does_not_validate_the_same_step_twice(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    args = tiny_args(src, tgt, out, "--max-steps", 4, "--valid-every", 4, "--save-every", 4) + [
        "--valid-src",
        str(src),
        "--valid-tgt",
        str(tgt),
    ]
    assert run(*args).exit_code == 0
    result = run(*args, "--resume")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "valid_bleu" in r] == [4]


def test_a_user_error_does_not_import_the_training_code(tmp_path):
    """The error path stands alone: a bad model or a bad recipe is reported without loading training."""
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\nlr = "fast"\n')
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from xformer_cli.cli.app import app\n"
        f"a = CliRunner().invoke(app, ['translate', '-m', {str(tmp_path / 'missing')!r}], input='Hallo\\n')\n"
        f"b = CliRunner().invoke(app, ['train', '--config', {str(recipe)!r}, '--out', {str(tmp_path / 'run')!r}])\n"
        "print(a.exit_code, b.exit_code, 'xformer_cli.training.trainer' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=ENV(), capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "1", "False"], done.stdout + done.stderr


def test_one_update_of_2b_equals_two_accumulated_micro_batches_of_b(tokenizer, tiny_corpus):
    """fairseq's rule: the loss is normalized by the target tokens of the whole update, so the
    micro-batches' different token counts do not weigh their tokens differently."""
    src, tgt = (read_lines(p)[:12] for p in tiny_corpus)
    c = preset("tiny", vocab_size=tokenizer.vocab_size, dropout=0.0)
    s_ids, t_ids = tokenizer.encode(src), tokenizer.encode(tgt)
    torch.manual_seed(0)
    one, two = build_model(c), build_model(c)
    two.load_state_dict(one.state_dict())
    batch = lambda rows: collate([s_ids[i] for i in rows], [t_ids[i] for i in rows], c.pad_id, c.bos_id, c.eos_id)
    halves = [batch(range(0, 6)), batch(range(6, 12))]
    assert halves[0].n_tokens != halves[1].n_tokens  # otherwise per-micro-batch normalization would pass too
    loss_one, tokens_one, _ = backward_accumulated(one, [batch(range(12))], c.pad_id, 0.1, Distributed())
    loss_two, tokens_two, _ = backward_accumulated(two, halves, c.pad_id, 0.1, Distributed())
    assert tokens_one == tokens_two and loss_one == pytest.approx(loss_two, rel=1e-5)
    # Float32 sums in other batch shapes differ by ~1e-8 here (measured: at most 4e-8 against
    # gradients up to 0.16); 1e-6 is far above that and far below a normalization error.
    for p1, p2 in zip(one.parameters(), two.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, atol=1e-6, rtol=0)


def test_ddp_shares_one_seeded_tokenizer_and_reduces_gradients_once_per_update(tiny_corpus, tmp_path):
    """Two processes on gloo (tests/training/ddp_probe.py): only rank 0 trains SentencePiece, on a sample of
    the corpus fixed by the seed; rank 1 loads the same file. Accumulated gradients equal one
    process's gradient of the global batch, with one all-reduce per update (no_sync before)."""
    src, tgt = tiny_corpus
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29519",
            str(Path(__file__).parent / "ddp_probe.py"),
            str(src),
            str(tgt),
            str(tmp_path / "run"),
        ],
        env=ENV(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = {r["rank"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "run").glob("rank*.json"))}
    assert sorted(ranks) == [0, 1]
    assert ranks[0]["trained_tokenizer"] and not ranks[1]["trained_tokenizer"]
    expected = train_tokenizer([*read_lines(src), *read_lines(tgt)], 400, max_sentences=300, seed=5)  # this process: same seed, same model
    assert ranks[0]["tokenizer_sha"] == ranks[1]["tokenizer_sha"] == hashlib.sha256(expected.model_proto).hexdigest()
    for r in ranks.values():
        assert r["grad_diff"] <= 1e-6 < r["grad_size"]  # the tolerance of the single-process test above
        assert r["reductions_two_micro_batches"] == r["reductions_one_micro_batch"] >= 1
    # One shared corpus cache: rank 0 encoded the corpus (800 sentences) once, rank 1 only mapped it.
    assert ranks[0]["cache"] == ranks[1]["cache"] and len(ranks[0]["cache"]) == 1
    assert ranks[0]["tokens_sha"] == ranks[1]["tokens_sha"]
    assert ranks[0]["sentences_encoded"] == 800 and ranks[1]["sentences_encoded"] == 0
    assert [p.name for p in (tmp_path / "run" / "cache" / "corpora").iterdir() if p.is_dir()] == [Path(ranks[0]["cache"][0]).name]
    # Each rank its own batches of the same epoch, equally many, no pair in both.
    mine = [[i for b in ranks[r]["batches"] for i in b] for r in (0, 1)]
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) > 0 and not set(mine[0]) & set(mine[1])


def test_the_model_card_states_only_the_license_and_data_it_was_given(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    unknown, known = tmp_path / "unknown", tmp_path / "known"
    assert run(*tiny_args(src, tgt, unknown, "--max-steps", 1)).exit_code == 0
    card = (unknown / "bundle" / "README.md").read_text()
    assert "license:" not in card and "datasets:" not in card
    result = run(
        *tiny_args(src, tgt, known, "--max-steps", 1, "--license", "cc-by-2.0", "--dataset", "tatoeba", "--dataset", "tiny-sample")
    )
    assert result.exit_code == 0, result.output
    card = (known / "bundle" / "README.md").read_text()
    assert "license: cc-by-2.0" in card and "datasets:\n- tatoeba\n- tiny-sample" in card


def test_fine_tuning_starts_from_a_bundles_weights_and_tokenizer_with_a_fresh_optimizer(trained_bundle_dir, tiny_corpus, tmp_path):
    from xformer_cli.training.checkpoint import load_checkpoint

    src, tgt = tiny_corpus
    out = tmp_path / "tuned"
    # lr 0 keeps the weights as they were loaded, so the final bundle shows where training started.
    result = run(
        "train",
        "--init-from",
        trained_bundle_dir,
        "--src",
        src,
        "--tgt",
        tgt,
        "--out",
        out,
        "--max-steps",
        3,
        "--lr",
        0,
        "--batch-tokens",
        600,
        "--threads",
        1,
    )
    assert result.exit_code == 0, result.output
    assert f"initialized from {trained_bundle_dir}; fresh optimizer" in result.stderr
    assert (out / "spm.model").read_bytes() == (trained_bundle_dir / "spm.model").read_bytes()
    start, tuned = load_bundle(trained_bundle_dir), load_bundle(out / "bundle")
    assert tuned.model.config == start.model.config
    for (name, before), after in zip(start.model.state_dict().items(), tuned.model.state_dict().values()):
        assert torch.equal(before, after), name
    tensors, meta = load_checkpoint(sorted((out / "checkpoints").glob("step-*.safetensors"))[-1])
    assert meta["step"] == 3 and int(tensors["optim.0.step"]) == 3  # Adam counted this run's updates only


def test_fine_tuning_refuses_model_flags_and_names_a_missing_bundle(tiny_corpus, tmp_path, trained_bundle_dir):
    src, tgt = tiny_corpus
    args = ["train", "--src", src, "--tgt", tgt, "--out", tmp_path / "run"]
    assert_one_line_error(
        run(*args, "--init-from", trained_bundle_dir, "--preset", "tiny"),
        "--init-from takes the model config from the bundle; drop --preset",
    )
    assert_one_line_error(run(*args, "--init-from", tmp_path / "no-such-bundle"), "no-such-bundle")


def test_a_second_run_on_the_same_data_encodes_nothing_and_trains_no_tokenizer(tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    first = run(*tiny_args(src, tgt, tmp_path / "one", "--max-steps", 1))
    assert first.exit_code == 0, first.output
    assert "trained a 500-piece SentencePiece model" in first.stderr and "encoded tiny: 400 pairs" in first.stderr
    second = run(*tiny_args(src, tgt, tmp_path / "two", "--max-steps", 1))
    assert second.exit_code == 0, second.output
    assert "encoded tiny" not in second.stderr and "trained a" not in second.stderr
    assert "corpus tiny: encoded before" in second.stderr and "SentencePiece model: trained on the same data before" in second.stderr
    assert (tmp_path / "one" / "spm.model").read_bytes() == (tmp_path / "two" / "spm.model").read_bytes()
    assert len([p for p in (corpus_cache / "corpora").iterdir() if p.is_dir()]) == 1


def test_weighted_corpora_from_a_recipe_train_and_are_listed_in_the_card(tiny_corpus, tmp_path):
    lines = [p.read_text(encoding="utf-8").splitlines() for p in tiny_corpus]
    (tmp_path / "data").mkdir()
    for name, part in (("chat", slice(0, 250)), ("news", slice(250, 400))):
        for lang, side in zip(("de", "en"), lines):
            (tmp_path / "data" / f"{name}.{lang}.gz").write_bytes(gzip.compress("".join(f"{x}\n" for x in side[part]).encode()))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'preset = "tiny"\n[model]\nvocab_size = 500\n[train]\nbatch_tokens = 600\nthreads = 1\nmax_steps = 2\n'
        '[[train.corpora]]\nname = "chat"\nsrc = "data/chat.de.gz"\ntgt = "data/chat.en.gz"\nweight = 0.5\n'
        '[[train.corpora]]\nname = "news-2"\nsrc = "data/news.de.gz"\ntgt = "data/news.en.gz"\nweight = 2\n'
    )
    out = tmp_path / "run"
    result = run("train", "--config", recipe, "--out", out)
    assert result.exit_code == 0, result.output
    assert "training data chat: kept" in result.stderr and "(weight 0.5)" in result.stderr
    stats = {c["name"]: c for c in json.loads((out / "run.json").read_text())["corpora"]}
    assert stats["chat"]["weight"] == 0.5 and stats["news-2"]["weight"] == 2.0 and 0 < stats["news-2"]["pairs"] <= 150
    card = (out / "bundle" / "README.md").read_text()
    for name, c in stats.items():
        assert f"| {name} | `{c['src']}` | `{c['tgt']}` | {c['pairs']:,} | {c['weight']:g} |" in card
    assert str(tmp_path / "data" / "news.en.gz") in card
    assert load_bundle(out / "bundle").extra["training"]["corpora"] == [
        {"name": n, "pairs": stats[n]["pairs"], "weight": stats[n]["weight"]} for n in ("chat", "news-2")
    ]


def test_a_full_disk_while_encoding_is_one_line_and_leaves_no_cache(tiny_corpus, tmp_path, corpus_cache, monkeypatch):
    from xformer_cli.training import corpus_encoding

    def full(self, array):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(corpus_encoding.ArrayWriter, "write", full)
    src, tgt = tiny_corpus
    result = run(*tiny_args(src, tgt, tmp_path / "run"))
    # Progress lines (the tokenizer trained before encoding) may come first; the error is one line, last.
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert "no space left on the device while encoding" in lines[-1] and str(src) in lines[-1]
    assert [p for p in (corpus_cache / "corpora").iterdir() if p.is_dir()] == []


def test_checkpoint_to_bundle_makes_the_bundle_and_card_the_run_would(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "run"
    assert run(*tiny_args(src, tgt, out, "--max-steps", 4, "--save-every", 2, "--license", "cc-by-2.0")).exit_code == 0
    script = Path(__file__).parents[2] / "scripts" / "checkpoint_to_bundle.py"

    def to_bundle(step: int, folder: str, *options: str) -> None:
        checkpoint = out / "checkpoints" / f"step-000000{step}.safetensors"
        command = [sys.executable, str(script), str(out), str(checkpoint), str(tmp_path / folder), *options]
        done = subprocess.run(command, env=ENV(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    to_bundle(2, "at-2")
    bundle = load_bundle(tmp_path / "at-2")
    assert bundle.extra["training"]["steps"] == 2 and bundle.tokenizer.model_proto == (out / "spm.model").read_bytes()
    card = (tmp_path / "at-2" / "README.md").read_text()
    assert "license: cc-by-2.0" in card and "| tiny | `" in card and "step-0000002.safetensors" in card
    from xformer_cli.training.checkpoint import load_checkpoint, model_state

    for name, tensor in model_state(load_checkpoint(out / "checkpoints" / "step-0000002.safetensors")[0]).items():
        assert torch.equal(bundle.model.state_dict()[name], tensor), name
    # Both bundles say how long their weights trained: the seconds of training of their step.
    seconds = {step: round(load_checkpoint(out / "checkpoints" / f"step-000000{step}.safetensors")[1]["elapsed"]) for step in (2, 4)}
    assert bundle.extra["training"]["seconds"] == seconds[2]
    final = load_bundle(out / "bundle").extra["training"]
    assert final["steps"] == 4 and final["seconds"] == seconds[4]
    # --average 2 ending at step 4: the mean of the checkpoints of steps 2 and 4, named on the card.
    to_bundle(4, "mean", "--average", "2")
    mean = load_bundle(tmp_path / "mean")
    two, four = (model_state(load_checkpoint(out / "checkpoints" / f"step-000000{n}.safetensors")[0]) for n in (2, 4))
    for name, tensor in mean.model.state_dict().items():
        assert torch.allclose(tensor, (two[name].float() + four[name].float()) / 2, atol=1e-6), name
    assert "the mean of step-0000002.safetensors, step-0000004.safetensors" in (tmp_path / "mean" / "README.md").read_text()


def test_cpu_autocast_is_bfloat16_only_where_the_cpu_computes_in_it(monkeypatch):
    import xformer_cli.training.distributed as distributed

    cpu = torch.device("cpu")
    monkeypatch.setattr(distributed, "cpu_bf16_pays", lambda: True)
    assert distributed.half_precision(cpu, bf16=True) == torch.bfloat16
    assert distributed.half_precision(cpu, bf16=False) is None
    with distributed.autocast(cpu, bf16=True):
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    monkeypatch.setattr(distributed, "cpu_bf16_pays", lambda: False)  # emulated bfloat16 is slower: stay float32
    assert distributed.half_precision(cpu, bf16=True) is None
    with distributed.autocast(cpu, bf16=True):
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.float32


@pytest.mark.parametrize(
    "avx512_bf16, amx, pays",
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
    ids=["avx512-bf16", "amx", "avx2", "amx-only"],
)
def test_cpu_bfloat16_is_the_default_only_on_avx512_bf16_without_amx(monkeypatch, avx512_bf16, amx, pays):
    import xformer_cli.devices as devices
    import xformer_cli.training.distributed as distributed

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert devices.cpu_bf16_pays() is pays
    assert distributed.half_precision(torch.device("cpu"), bf16=True) == (torch.bfloat16 if pays else None)


def test_cpu_bfloat16_training_bounds_both_kernel_caches_unless_the_user_set_them(monkeypatch):
    import xformer_cli.training.distributed as distributed

    caches = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
    monkeypatch.setattr(distributed, "cpu_bf16_pays", lambda: True)
    for name in caches:
        monkeypatch.delenv(name, raising=False)
    distributed.training_device("cpu", 0, bf16=False)  # float32 keeps the libraries' defaults
    assert not any(name in os.environ for name in caches)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "100")
    distributed.training_device("cpu", 0, bf16=True)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8" and os.environ["LRU_CACHE_CAPACITY"] == "100"


def test_cpu_training_in_bfloat16_starts_where_float32_does_learns_and_bundles_float32(tiny_corpus, tmp_path, monkeypatch):
    import xformer_cli.training.distributed as distributed

    src, tgt = tiny_corpus
    monkeypatch.setattr(distributed, "cpu_bf16_pays", lambda: True)  # bfloat16 runs (emulated) on any CPU
    half = run(*tiny_args(src, tgt, tmp_path / "bf16", "--max-steps", 40, "--log-every", 1, "--device", "cpu"))
    full = run(*tiny_args(src, tgt, tmp_path / "fp32", "--max-steps", 1, "--log-every", 1, "--no-bf16", "--device", "cpu"))
    assert half.exit_code == 0 and full.exit_code == 0, half.output + full.output
    assert "device cpu, bfloat16 autocast" in half.stderr and "device cpu, float32" in full.stderr
    half_losses, full_losses = losses(tmp_path / "bf16"), losses(tmp_path / "fp32")
    # Same weights, same batch, rounding apart (measured: 1.5e-5 relative, 6.64067 against 6.64057).
    assert half_losses[1] == pytest.approx(full_losses[1], rel=2e-2)
    assert half_losses[1] != full_losses[1]  # but computed in bfloat16
    # Measured: 31.28 against 33.09 (after 20 updates the gap was 0.7%, too thin for another CPU).
    assert sum(half_losses[s] for s in range(36, 41)) < sum(half_losses[s] for s in range(1, 6))
    bundle = load_bundle(tmp_path / "bf16" / "bundle")
    assert all(p.dtype == torch.float32 for p in bundle.model.parameters())


def tagged_recipe(tiny_corpus, tmp_path, extra: str = "") -> Path:
    """A recipe of two corpora split from the tiny one: 'real' (250 pairs) and 'synthetic' (150,
    tag = true); `extra` goes at the end of [train]."""
    lines = [p.read_text(encoding="utf-8").splitlines() for p in tiny_corpus]
    for name, part in (("real", slice(0, 250)), ("synthetic", slice(250, 400))):
        for lang, side in zip(("de", "en"), lines):
            (tmp_path / f"{name}.{lang}").write_text("".join(f"{x}\n" for x in side[part]), encoding="utf-8")
    recipe = tmp_path / "tagged.toml"
    recipe.write_text(
        'preset = "tiny"\n[model]\nvocab_size = 500\n[train]\nbatch_tokens = 600\nthreads = 1\nseed = 3\nsave_every = 2\nlog_every = 1\n'
        f"{extra}\n"
        '[[train.corpora]]\nname = "real"\nsrc = "real.de"\ntgt = "real.en"\n'
        '[[train.corpora]]\nname = "synthetic"\nsrc = "synthetic.de"\ntgt = "synthetic.en"\ntag = true\n'
    )
    return recipe


def test_a_tagged_corpus_trains_a_bundle_that_bans_the_tag_and_resume_and_fine_tuning_keep_it(tiny_corpus, tmp_path):
    recipe = tagged_recipe(tiny_corpus, tmp_path)
    out, straight = tmp_path / "run", tmp_path / "straight"
    result = run("train", "--config", recipe, "--out", out, "--max-steps", 2)
    assert result.exit_code == 0, result.output
    assert "training data synthetic: kept" in result.stderr and "tagged <bt>" in result.stderr
    bundle = load_bundle(out / "bundle")
    assert bundle.tokenizer.tag_id == bundle.model.config.tag_id == 4
    stats = {c["name"]: c for c in json.loads((out / "run.json").read_text())["corpora"]}
    assert (stats["real"]["tagged"], stats["synthetic"]["tagged"]) == (False, True)
    card = (out / "bundle" / "README.md").read_text()
    assert "| weight | tagged |" in card and "`<bt>`" in card
    for name, mark in (("real", "no"), ("synthetic", "yes")):
        c = stats[name]
        assert f"| {name} | `{c['src']}` | `{c['tgt']}` | {c['pairs']:,} | {c['weight']:g} | {mark} |" in card
    assert bundle.extra["training"]["corpora"] == [
        {"name": "real", "pairs": stats["real"]["pairs"], "weight": 1.0},
        {"name": "synthetic", "pairs": stats["synthetic"]["pairs"], "weight": 1.0, "tagged": True},
    ]

    # Resumed, it keeps the tag and follows the trajectory of a run that never stopped.
    result = run("train", "--config", recipe, "--out", out, "--max-steps", 4, "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed from step-0000002" in result.stderr and "corpus synthetic: encoded before" in result.stderr
    assert load_bundle(out / "bundle").model.config.tag_id == 4
    assert run("train", "--config", recipe, "--out", straight, "--max-steps", 4).exit_code == 0
    expected, got = losses(straight), losses(out)
    assert sorted(got) == [1, 2, 3, 4]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step

    # Fine-tuned from that bundle, with the tagged corpus: its tokenizer has the piece.
    tuned = tmp_path / "tuned"
    result = run("train", "--config", recipe, "--init-from", out / "bundle", "--out", tuned, "--max-steps", 1)
    assert result.exit_code == 0, result.output
    assert (tuned / "spm.model").read_bytes() == (out / "bundle" / "spm.model").read_bytes()
    assert load_bundle(tuned / "bundle").model.config.tag_id == 4


def test_a_tagged_corpus_with_an_spm_model_lacking_the_tag_is_one_line_before_training(tiny_corpus, tmp_path, trained_bundle_dir):
    recipe = tagged_recipe(tiny_corpus, tmp_path, f'spm_model = "{trained_bundle_dir / "spm.model"}"')
    out = tmp_path / "run"
    result = run("train", "--config", recipe, "--out", out, "--max-steps", 2)
    assert_one_line_error(
        result, "corpus 'synthetic' has tag = true", f"the tokenizer of spm_model {trained_bundle_dir / 'spm.model'} reserves no <bt> piece"
    )
    assert not list((out / "checkpoints").glob("*")) and not (out / "metrics.jsonl").exists()


def test_fine_tuning_a_bundle_without_the_tag_on_tagged_corpora_grows_its_vocabulary_by_the_tag(tiny_corpus, tmp_path, trained_bundle_dir):
    """A bundle made before tagging (the stored tiny one, like the shipped model) gets the tag as
    one more piece with an embedding row of its own; every other id and weight starts as it was."""
    original = load_bundle(trained_bundle_dir)
    assert original.tokenizer.tag_id is None
    grown = with_tag_piece(original, seed=3)
    size = original.tokenizer.vocab_size
    assert grown.tokenizer.tag_id == grown.model.config.tag_id == size and grown.model.config.vocab_size == size + 1
    assert grown.tokenizer.pieces(range(size)) == original.tokenizer.pieces(range(size))
    texts = ["Ich habe Hunger <bt>.", "Wo ist der Bahnhof?"]
    assert grown.tokenizer.encode(texts) == original.tokenizer.encode(texts)  # no text produces the tag
    old, new = original.model.state_dict(), grown.model.state_dict()
    assert torch.equal(new["embedding.weight"][:size], old["embedding.weight"]) and new["embedding.weight"][size].abs().sum() > 0
    assert all(torch.equal(new[name], t) for name, t in old.items() if name != "embedding.weight")
    assert with_tag_piece(grown) is grown

    recipe = tagged_recipe(tiny_corpus, tmp_path)
    out = tmp_path / "tuned"
    result = run("train", "--config", recipe, "--out", out, "--max-steps", 2, "--init-from", trained_bundle_dir)
    assert result.exit_code == 0, result.output
    assert f"reserves no <bt>: added it as piece {size}" in result.stderr
    resumed = run("train", "--config", recipe, "--out", out, "--max-steps", 4, "--init-from", trained_bundle_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output
    tuned = load_bundle(out / "bundle")
    assert tuned.tokenizer.tag_id == tuned.model.config.tag_id == size
    assert tuned.tokenizer.digest() == grown.tokenizer.digest()


def test_subword_sampling_trains_each_epoch_on_its_own_segmentation_and_resumes_mid_epoch_exactly(tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    sampling = ("--subword-alpha", 0.1, "--log-every", 1, "--save-every", 100)
    result = run(*tiny_args(src, tgt, straight, "--max-steps", 24, *sampling))
    assert result.exit_code == 0, result.output
    for epoch in (1, 2):
        assert result.stderr.count(f"epoch {epoch}: sampled segmentation (subword_alpha 0.1), encoded in ") == 1
    assert "epoch 3:" not in result.stderr
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    first_epoch = max(r["step"] for r in records if r.get("epoch") == 1)
    assert 4 <= first_epoch < 20 and {r.get("epoch") for r in records if "loss" in r} == {1, 2}
    assert json.loads((straight / "run.json").read_text())["train"]["subword_alpha"] == 0.1
    assert (
        "Subword regularization (subword_alpha 0.1): every epoch trained on a fresh sampled segmentation"
        in (straight / "bundle" / "README.md").read_text()
    )
    assert len([p for p in (corpus_cache / "corpora").iterdir() if p.is_dir()]) == 1  # the finished run left only the plain entry

    # Stopped in the middle of epoch 1 (which deletes that epoch's entry) and resumed: the epoch is
    # sampled again, to the same pieces, and training follows the straight run's losses.
    middle = first_epoch // 2
    assert run(*tiny_args(src, tgt, stopped, "--max-steps", middle, *sampling)).exit_code == 0
    result = run(*tiny_args(src, tgt, stopped, "--max-steps", 24, *sampling), "--resume")
    assert result.exit_code == 0, result.output
    assert f"resumed from step-{middle:07d}.safetensors: step {middle}, epoch 1, batch {middle}" in result.stderr
    assert "epoch 1: sampled segmentation (subword_alpha 0.1), encoded in " in result.stderr and "epoch 2: sampled" in result.stderr
    expected, got = losses(straight), losses(stopped)
    assert sorted(got) == list(range(1, 25))
    for step in range(1, 25):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_subword_alpha_0_trains_exactly_as_without_it(tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    plain = run(*tiny_args(src, tgt, tmp_path / "plain", "--max-steps", 3, "--log-every", 1))
    zero = run(*tiny_args(src, tgt, tmp_path / "zero", "--max-steps", 3, "--log-every", 1, "--subword-alpha", 0))
    assert plain.exit_code == zero.exit_code == 0, plain.output + zero.output
    assert "sampled" not in zero.stderr and "Subword regularization" not in (tmp_path / "zero" / "bundle" / "README.md").read_text()
    assert losses(tmp_path / "zero") == losses(tmp_path / "plain")
    assert len([p for p in (corpus_cache / "corpora").iterdir() if p.is_dir()]) == 1  # one entry, the same key
