"""Every option of every command has help text: the test walks whatever subcommands the parser holds."""
import argparse

import pytest

from maskgit.cli import build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {"maskgit": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update({f"maskgit {name}" if k == "maskgit" else k: v for k, v in _commands(sub).items()})
    return found


COMMANDS = _commands(build_parser())


def test_the_walk_finds_every_command():
    assert {"maskgit sample", "maskgit train", "maskgit train-tokenizer", "maskgit presets", "maskgit inpaint",
            "maskgit evaluate", "maskgit train-classifier"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_text(command):
    parser = COMMANDS[command]
    # a hidden option (help=SUPPRESS) must be an old spelling of a shown one: same destination
    shown = {a.dest for a in parser._actions if a.help != argparse.SUPPRESS}
    missing = [", ".join(a.option_strings) or a.dest for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and (a.help is None or not str(a.help).strip() or (a.help == argparse.SUPPRESS and a.dest not in shown))]
    assert not missing, f"{command}: options without help text: {missing}"
    assert parser.format_help()  # every help string formats (no stray % placeholders)


def test_version(capsys):
    from maskgit import __version__

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"maskgit {__version__}"


def test_tokenizer_takes_a_bundled_model_name(tmp_path):
    for argv in (["train", "--data", "digits", "--out", str(tmp_path)], ["eval-tokenizer", "--out", "x.json"]):
        args = build_parser().parse_args([*argv, "--tokenizer", "fashion-mnist"])
        assert (args.tokenizer / "tokenizer.json").is_file() and args.tokenizer.parent.name == "pretrained"
    # a directory of that name holding a tokenizer wins over the bundled model
    (tmp_path / "fashion-mnist").mkdir()
    (tmp_path / "fashion-mnist" / "tokenizer.json").write_text("{}")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        args = build_parser().parse_args(["eval-tokenizer", "--out", "x.json", "--tokenizer", "fashion-mnist"])
    finally:
        os.chdir(cwd)
    assert str(args.tokenizer) == "fashion-mnist"


def test_help_states_the_model_defaults():
    """Left out, a decoding option takes the model's own default: help says so, with the bundled model's value
    (linear guidance at 4, temperature 1.2), not the library's (constant, 0)."""
    import json
    from pathlib import Path

    import maskgit

    bundled = json.loads((Path(maskgit.__file__).parent / "pretrained" / "fashion-mnist" / "config.json").read_text())
    text = " ".join(COMMANDS["maskgit sample"].format_help().split())
    for option, key in (("--guidance-scale", "guidance_scale"), ("--guidance-schedule", "guidance_schedule"),
                        ("--temperature", "temperature"), ("--steps", "steps")):
        after = text.split(f"{option} ", 2)[-1]
        assert f"the bundled fashion-mnist: {bundled['sampling'][key]})" in after[:400], option


BARS = ["sample", "sample-dump", "train", "train-tokenizer", "evaluate", "evaluate-editing", "train-classifier",
        "eval-tokenizer", "metrics", "bench"]  # the commands that draw a progress bar


@pytest.mark.parametrize("command", BARS)
def test_no_progress_wherever_there_is_a_bar(command):
    options = {o for a in COMMANDS[f"maskgit {command}"]._actions for o in a.option_strings}
    assert "--no-progress" in options


def test_no_progress_draws_no_bar(tmp_path):
    import subprocess
    import sys

    argv = [sys.executable, "-m", "maskgit.cli", "train-classifier", "--data", "digits", "--epochs", "1", "--out",
            str(tmp_path / "judge")]
    quiet = subprocess.run([*argv, "--no-progress"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "%|" not in quiet.stderr and "classifier" not in quiet.stderr
