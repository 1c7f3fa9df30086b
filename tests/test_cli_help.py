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
    missing = [", ".join(a.option_strings) or a.dest for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and (a.help is None or a.help == argparse.SUPPRESS or not str(a.help).strip())]
    assert not missing, f"{command}: options without help text: {missing}"
    assert parser.format_help()  # every help string formats (no stray % placeholders)
