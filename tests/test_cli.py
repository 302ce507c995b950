"""The command line as a tool: light commands start without torch, --version, help with defaults and
examples, one name for one thing across commands (old spellings still accepted), --no-progress and
progress bars, zoo names wherever a genotype is. Startup time is measured in
benchmarks/cli_startup.py, not asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import bnnzoo
from bnnzoo.cli import COMMANDS, build_parser, main
from bnnzoo.cli.parsing import _default_note
from bnnzoo.dsl import to_text
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_path
from bnnzoo.train.evaluate import evaluate

HEAVY = ("torch", "timm", "torchvision")
PROBE = """
import json, sys
from bnnzoo.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exit:
    code = exit.code
with open(sys.argv[2], "w") as report:
    json.dump({"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}, report)
""".replace("HEAVY", repr(HEAVY))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["check", "--help"],
        ["fmt", "--help"],
        ["check", str(zoo_genotype_path("bnas_a")), "mbconv_a"],
        ["fmt", "--check", "mbconv_a", str(zoo_genotype_path("xnor_resnet18"))],
        ["fmt", "--stdout", "bnas_mini"],
    ],
    ids=lambda argv: " ".join(Path(word).name for word in argv),
)
def test_light_commands_do_not_import_torch(argv: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), str(report)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(report.read_text()) == {"code": 0, "heavy": []}


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"bnnzoo {bnnzoo.__version__}\n"


def test_top_level_help_lists_every_command_with_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert re.search(rf"^    {name} +{re.escape(command.summary[:30])}", out, re.M), name
    assert "examples:\n  bnnzoo " in out


def _subparsers() -> dict:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_shows_its_defaults_and_examples(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    help_text = capsys.readouterr().out
    flat = " ".join(help_text.split())
    examples = re.findall(rf"^  bnnzoo {name}\b.*$", help_text.split("examples:\n", 1)[1], re.M)
    assert len(examples) >= 2, help_text
    for action in _subparsers()[name]._actions:
        note = _default_note(action)
        if note:
            assert note.replace("%%", "%") in flat, f"{name} {action.option_strings}: no {note}"
    assert "--limit" not in help_text and "--out " not in help_text  # old spellings are hidden


def test_defaults_are_shown_for_real_values_only() -> None:
    train = _subparsers()["train"]
    notes = {action.dest: _default_note(action) for action in train._actions}
    assert notes["epochs"] and notes["epochs"].startswith("(default: ")
    assert notes["resume"] is None  # an on/off flag
    assert notes["teacher"] is None  # no default
    assert _default_note(next(a for a in _subparsers()["search"]._actions if a.dest == "widths")) == (
        "(default: 16,24,32,64)"
    )


def test_one_name_for_one_thing_across_commands() -> None:
    options = {name: {s for a in parser._actions for s in a.option_strings} for name, parser in _subparsers().items()}
    for name in ("search", "train"):
        assert "--train-limit" in options[name], name
    for name in ("train", "eval"):
        assert "--test-limit" in options[name], name
    for name in ("fit", "draw", "search", "train", "publish", "export"):
        assert {"-o", "--output"} <= options[name], name
    for name in ("search", "train", "eval"):
        assert {"--batch-size", "--device", "--dataset", "--data-root"} <= options[name], name
    for name in ("search", "train", "eval", "fit"):
        assert "--no-progress" in options[name], name


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        (["search", "--limit", "7"], "limit", 7),
        (["search", "--train-limit", "7"], "limit", 7),
        (["eval", "mbconv_a", "--limit", "5"], "test_limit", 5),
        (["eval", "mbconv_a", "--test-limit", "5"], "test_limit", 5),
        (["publish", "mbconv_a", "--checkpoint", "c", "--out", "x"], "output", "x"),
        (["publish", "mbconv_a", "--checkpoint", "c", "-o", "x"], "output", "x"),
        (["eval", "mbconv_a", "--no-progress"], "progress", False),
        (["eval", "mbconv_a"], "progress", None),
        (["fit", "--published", "mbconv_a", "--no-progress"], "progress", False),
        (["train", "mbconv_a", "--no-progress"], "progress", False),
    ],
)
def test_old_spellings_and_progress_flags_parse(argv: list[str], dest: str, value: object) -> None:
    args = build_parser(argv[0]).parse_args(argv)
    assert getattr(args, dest) == value


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["chekc", "x.bnn"])
    assert exit.value.code == 2
    assert "invalid choice: 'chekc'" in capsys.readouterr().err


def test_check_and_fmt_accept_zoo_names(capsys) -> None:
    assert main(["check", "mbconv_a", "bnas_a"]) == 0
    assert capsys.readouterr().out == "mbconv_a: ok\nbnas_a: ok\n"
    assert main(["check", "mbconv_aa"]) == 1
    assert "mbconv_aa: no such file or zoo model; did you mean 'mbconv_a'?" in capsys.readouterr().err
    assert main(["fmt", "--stdout", "bnas_mini"]) == 0
    assert capsys.readouterr().out == to_text(zoo_genotype("bnas_mini"))
    assert main(["fmt", "--check", "bnas_mini"]) == 0
    before = zoo_genotype_path("bnas_mini").read_bytes()
    assert main(["fmt", "bnas_mini"]) == 1
    assert "bnas_mini is a zoo genotype, installed read-only" in capsys.readouterr().err
    assert zoo_genotype_path("bnas_mini").read_bytes() == before


def test_fmt_stdout_of_a_file_leaves_it_alone(tmp_path: Path, capsys) -> None:
    path = tmp_path / "copy.bnn"
    text = zoo_genotype_path("mbconv_a").read_text().replace("classes 10", "classes    10")
    path.write_text(text)
    assert main(["fmt", "--stdout", str(path)]) == 0
    assert capsys.readouterr().out == to_text(zoo_genotype("mbconv_a"))
    assert path.read_text() == text


def test_evaluate_shows_a_progress_bar_only_when_asked(capsys) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    data = TensorDataset(torch.randn(10, 3, 2, 2), torch.arange(10) % 3)
    result = evaluate(model, data, batch_size=4, progress=True)
    assert result["samples"] == 10
    assert "eval" in capsys.readouterr().err
    evaluate(model, data, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""


def test_fit_shows_a_progress_bar_on_a_terminal_unless_told_not_to(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["fit", "--published", "mbconv_a", "--iterations", "5", "--restarts", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "fit mbconv_a" in err and "worst relative error" in out
    assert main([*argv, "--no-progress"]) == 0
    assert "fit mbconv_a" not in capsys.readouterr().err
