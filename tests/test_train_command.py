"""``descentlab train``: the built-in problems, the range test, resuming a checkpoint, one-line errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from descentlab.cli import main
from descentlab.training._problems import stdlib_corpus

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_short_digits_run_prints_the_summary_and_writes_the_figure(capsys, tmp_path):
    threads = torch.get_num_threads()
    code, out, err = run(capsys, "train", "digits", "--epochs", "2", "--opt", "SGD(lr=0.05, momentum=0.9)",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert torch.get_num_threads() == threads  # the one-thread setting is put back
    found = summary(tmp_path)
    assert found["optimizer"] == "SGD(lr=0.05, momentum=0.9)" and found["lr_source"] == "--opt"
    assert found["epochs_run"] == 2 and found["steps"] == 2 * math.ceil(1200 / 64)
    assert found["val_acc"] > 0.5  # two epochs on digits: far above chance (0.1)
    assert [e["epoch"] for e in found["history"]] == [1, 2]
    assert "descentlab train digits" in out and f"{found['val_acc']:.1%}" in out
    with Image.open(tmp_path / "loss.png") as image:
        assert image.format == "PNG" and image.width > 600
    assert not (tmp_path / "range_test.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_seed_sets_the_run(capsys, tmp_path):
    histories = []
    for seed, folder in (("0", "a"), ("0", "b"), ("1", "c")):
        code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--seed", seed, "--out",
                           str(tmp_path / folder))
        assert code == 0, err
        histories.append(summary(tmp_path / folder)["history"])
    assert histories[0] == histories[1] and histories[0] != histories[2]


def test_lr_find_uses_the_suggestion_unless_opt_sets_lr(capsys, tmp_path):
    code, out, err = run(capsys, "train", "digits", "--epochs", "1", "--opt", "sgd(momentum=0.9)",
                         "--lr-find", "--out", str(tmp_path / "found"))
    assert code == 0, err
    found = summary(tmp_path / "found")
    assert found["lr_source"] == "the range test" and found["lr"] == found["range_test"]["suggested"]
    assert found["range_test"]["curvature_lr"] > found["lr"]  # 2/λ_max lies above the suggestion
    assert "range test (" in out and f"training with lr={found['lr']:.3g}" in out
    assert 0.01 < found["lr"] < 2.0
    with Image.open(tmp_path / "found" / "range_test.png") as image:
        assert image.format == "PNG"
    # --opt sets lr: the range test still runs and is printed, but training uses --opt's lr, and it
    # trains exactly as without the test (the test restores everything and draws its own batches)
    code, out, err = run(capsys, "train", "digits", "--epochs", "1", "--opt", "sgd(lr=0.05, momentum=0.9)",
                         "--lr-find", "--out", str(tmp_path / "given"))
    assert code == 0, err
    assert "training with --opt's lr=0.05" in out
    code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--opt", "sgd(lr=0.05, momentum=0.9)",
                       "--out", str(tmp_path / "plain"))
    assert code == 0, err
    given, plain = summary(tmp_path / "given"), summary(tmp_path / "plain")
    assert given["lr"] == 0.05 and given["range_test"] is not None
    assert given["history"] == plain["history"]


def _checkpoint_tensors(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_the_same_command_again_resumes_from_the_checkpoint(capsys, tmp_path, monkeypatch):
    def command(name):
        return ["train", "digits", "--epochs", "3", "--early-stopping", "2", "--checkpoint",
                str(tmp_path / f"{name}.ckpt"), "--out", str(tmp_path / name)]

    code, _, err = run(capsys, *command("whole"))
    assert code == 0, err

    import descentlab.training.loop as loop

    evaluate, calls = loop.evaluate, {"n": 0}

    def crash_at_the_second_validation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the machine went away")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", crash_at_the_second_validation)
    code, _, err = run(capsys, *command("cut"))
    assert code == 1 and "the machine went away" in err
    monkeypatch.setattr(loop, "evaluate", evaluate)
    saved = torch.load(tmp_path / "cut.ckpt", weights_only=True)["position"]
    assert saved["epoch"] == 1 and saved["step"] == 25  # mid-epoch, every 25 steps

    code, out, err = run(capsys, *command("cut"))
    assert code == 0, err
    assert "resuming from" in out and "at epoch 2, step 25" in out
    whole, cut = summary(tmp_path / "whole"), summary(tmp_path / "cut")
    assert cut["resumed_at"] == [25] and whole["resumed_at"] == [] and cut["resumed_from"] == 25
    assert cut["history"] == whole["history"]
    a, b = _checkpoint_tensors(tmp_path / "whole.ckpt"), _checkpoint_tensors(tmp_path / "cut.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    code, out, err = run(capsys, *command("cut"))  # finished: nothing left to train
    assert code == 0, err
    again = summary(tmp_path / "cut")
    assert again["already_finished"] and again["history"] == whole["history"]
    assert "which had finished" in out


def test_a_checkpoint_of_another_command_is_refused_and_left_alone(capsys, tmp_path):
    path = tmp_path / "run.ckpt"
    code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--checkpoint", str(path))
    assert code == 0, err
    before = path.read_bytes(), (tmp_path / "run.ckpt.json").read_bytes()
    code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--checkpoint", str(path), "--seed", "3",
                       "--batch-size", "32")
    assert code == 2 and err.count("\n") == 1
    assert "belongs to another command" in err and "--seed 0 there, 3 here" in err
    assert "--batch-size 64 there, 32 here" in err
    assert (path.read_bytes(), (tmp_path / "run.ckpt.json").read_bytes()) == before
    path.write_bytes(before[0][: len(before[0]) // 2])  # a truncated checkpoint: refused, left as it is
    code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--checkpoint", str(path))
    assert code == 2 and err.count("\n") == 1 and "cannot be read" in err and "truncated" in err
    assert path.read_bytes() == before[0][: len(before[0]) // 2]
    (tmp_path / "run.ckpt.json").unlink()
    code, _, err = run(capsys, "train", "digits", "--epochs", "1", "--checkpoint", str(path))
    assert code == 2 and "was not written by descentlab train" in err


def test_a_char_rnn_smoke_run_records_the_corpus(capsys, tmp_path):
    code, out, err = run(capsys, "train", "char-rnn", "--epochs", "1", "--seq-len", "32", "--bptt", "8",
                         "--batch-size", "128", "--out", str(tmp_path))
    assert code == 0, err
    text, sha256 = stdlib_corpus()
    found = summary(tmp_path)
    assert found["corpus_sha256"] == sha256 and sha256 in out
    assert "truncated BPTT" in out and "chunks of k = 8" in found["truncated BPTT"]
    vocabulary = len(set(text))
    assert found["val_loss"] < math.log(vocabulary)  # better than a uniform guess over the characters
    assert found["steps"] == (int(0.9 * len(text)) - 1) // 32 // 128
    assert "bits/char" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "digts"], "did you mean 'digits'"),
    (["train", "digits", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["train", "digits", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["train", "digits", "--batch-size", "5000"], "exceeds the 1200 training images"),
    (["train", "digits", "--early-stopping", "-1"], "--early-stopping must be a positive integer"),
    (["train", "digits", "--seed", "-1"], "--seed must be >= 0"),
    (["train", "digits", "--opt", "adma(lr=0.1)"], "did you mean"),
    (["train", "digits", "--opt", "adam(lr=-1)"], "lr must be in [0, inf], got -1.0"),
    (["train", "digits", "--opt", "adam(betas=0.9"], "column"),
    (["train", "digits", "--opt", "bfgs"], "closure"),
    (["train", "digits", "--opt", "torch.lbfgs"], "closure"),
    (["train", "digits", "--bptt", "8"], "--bptt applies to the char-rnn problem only"),
    (["train", "char-rnn", "--bptt", "0"], "--bptt must be a positive integer"),
    (["train", "char-rnn", "--bptt", "64", "--seq-len", "32"], "--bptt (64) must be at most --seq-len (32)"),
    (["train", "char-rnn", "--batch-size", "100000"], "exceeds the"),
    (["train", "digits", "--epochs", "x"], "--epochs"),
    (["train"], "Missing argument"),
])
def test_bad_input_is_one_line_exit_2_before_any_work(capsys, tmp_path, argv, message):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *argv, "--out", str(out))
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists() or list(out.iterdir()) == []  # nothing was written


def test_unwritable_outputs_are_one_line_errors(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "train", "digits", "--out", str(blocker))
    assert code == 2 and "--out" in err and "not a directory" in err and err.count("\n") == 1
    code, _, err = run(capsys, "train", "digits", "--checkpoint", str(tmp_path))
    assert code == 2 and "--checkpoint must be a file path" in err
    code, _, err = run(capsys, "train", "digits", "--checkpoint", str(blocker / "run.ckpt"))
    assert code == 2 and "--checkpoint" in err


def _readme_train_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    joined = "\n".join(block.replace("\\\n", " ") for block in blocks)
    return [line.split("#")[0].strip() for line in joined.splitlines() if line.startswith("descentlab train")]


def test_the_readme_train_commands_run_as_written(capsys, tmp_path, monkeypatch):
    import shlex

    commands = _readme_train_commands()
    assert commands, "README.md shows no descentlab train command"
    monkeypatch.chdir(tmp_path)
    for command in commands:
        code, out, err = run(capsys, *shlex.split(command)[1:])
        assert code == 0, f"{command}: {err}"
        assert "descentlab train" in out
