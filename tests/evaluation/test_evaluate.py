import json
import subprocess
import sys

import pytest
from conftest import FIXTURES, assert_one_line_error
from typer.testing import CliRunner

from xformer_cli.cli.app import app
from xformer_cli.evaluation.test_sets import STANDARD_TESTSETS, available_testsets

runner = CliRunner()
HYP, REF, REF2 = FIXTURES / "hyp.en", FIXTURES / "ref.en", FIXTURES / "ref2.en"


def sacrebleu_cli(*refs, metric):
    """What the `sacrebleu` command prints, with 4 decimals."""
    done = subprocess.run(
        [sys.executable, "-m", "sacrebleu", *map(str, refs), "-i", str(HYP), "-m", metric, "-w", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def evaluate_json(*args):
    result = runner.invoke(app, ["evaluate", "--json", *map(str, args)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("refs", [(REF,), (REF, REF2)])
def test_scores_equal_the_sacrebleu_command_to_the_last_digit(refs):
    ref_args = [a for r in refs for a in ("--ref", r)]
    (ours,) = evaluate_json("--hyp", HYP, *ref_args, "--chrf")
    for metric in ("bleu", "chrf"):
        theirs = sacrebleu_cli(*refs, metric=metric)
        assert f"{ours[metric]:.4f}" == f"{theirs['score']:.4f}"
        assert ours["signatures"][metric] == theirs["signature"]


def test_ter_and_table_on_stderr():
    result = runner.invoke(app, ["evaluate", "--hyp", str(HYP), "--ref", str(REF), "--ter"])
    assert result.exit_code == 0, result.output
    assert "TER" in result.stderr and "signature: nrefs:1" in result.stderr
    assert result.stdout.count("\n") == 2  # one line per metric on stdout
    assert "BLEU = " in result.stdout and "TER = " in result.stdout


def test_translating_a_test_set_with_several_models(trained_bundle_dir, bundle_dir, tmp_path):
    src = tmp_path / "src.de"
    src.write_text("Ich habe Hunger.\nTom ist hier.\n", encoding="utf-8")
    ref = tmp_path / "ref.en"
    ref.write_text("I'm hungry.\nTom is here.\n", encoding="utf-8")
    hyp = tmp_path / "hyp.en"
    reports = evaluate_json("-m", trained_bundle_dir, "-m", bundle_dir, "--src", src, "--ref", ref, "--greedy", "--save-hyp", hyp)
    assert [r["model"] for r in reports] == [str(trained_bundle_dir), str(bundle_dir)]
    assert all(r["sentences"] == 2 and r["decoding"]["beam_size"] == 1 and r["sentences_per_second"] > 0 for r in reports)
    assert len(hyp.read_text(encoding="utf-8").splitlines()) == 2


def test_named_test_sets_from_a_data_folder(tmp_path):
    data = tmp_path / "data"
    (data / "multi30k").mkdir(parents=True)
    (data / "multi30k" / "test2016.de").write_text("Ein Hund.\n")
    (data / "multi30k" / "test2016.en").write_text("A dog.\n")
    found = available_testsets(str(data))
    assert "multi30k/test2016" in found and "tatoeba/test" in found  # the shipped split is always there
    listed = runner.invoke(app, ["evaluate", "--list-testsets", "--data-dir", str(data)])
    assert "multi30k/test2016" in listed.stdout
    assert set(STANDARD_TESTSETS) >= {"multi30k/test2016", "multi30k/test2017", "wmt14/full", "tatoeba/test"}


def one_line_error(*args):
    return assert_one_line_error(runner.invoke(app, ["evaluate", *map(str, args)]))


def test_counts_differ(tmp_path):
    short = tmp_path / "short.en"
    short.write_text("one line\n")
    message = one_line_error("--hyp", HYP, "--ref", short)
    assert "line counts differ" in message and "30 hypotheses" in message and "1 references" in message


def test_unknown_test_set_lists_the_known_ones():
    message = one_line_error("--testset", "wmt99/nothing")
    assert "unknown test set 'wmt99/nothing'" in message and "tatoeba/test" in message


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.en"
    empty.write_text("")
    assert "empty hypothesis file" in one_line_error("--hyp", empty, "--ref", REF)
    assert "empty reference file" in one_line_error("--hyp", HYP, "--ref", empty)


def test_references_that_are_not_utf8(tmp_path):
    bad = tmp_path / "bad.en"
    bad.write_bytes(REF.read_bytes().replace(b"\n", b"\n\xff", 1))
    message = one_line_error("--hyp", HYP, "--ref", bad)
    assert str(bad) in message and "line 2" in message and "not valid UTF-8" in message
