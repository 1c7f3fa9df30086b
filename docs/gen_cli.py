"""Write docs/reference/cli.md from the argparse parser (`maskgit.cli.build_parser`), so the page cannot drift
from `maskgit --help`: every command, every option, its value, default and help text.

    python docs/gen_cli.py            # rewrite docs/reference/cli.md
    python docs/gen_cli.py --check    # exit 1 if the committed page differs from the parser (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskgit.cli import build_parser

MARKUP = str.maketrans({c: "\\" + c for c in "\\*_[]"} | {"<": "&lt;", ">": "&gt;"})
PAGE = Path(__file__).resolve().parent / "reference" / "cli.md"
HEADER = """# Command line

Every `maskgit` command with all of its options, generated from the argument parser by `docs/gen_cli.py`
(a test regenerates this page and compares it with the committed one). `maskgit COMMAND --help` prints the same.
The guides show the commands at work: [sampling and editing](../guides/sampling-and-editing.md),
[training on your own images](../guides/own-images.md), [evaluation](../guides/evaluation.md).
"""


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """name -> (one-line help, parser), in the order the commands were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def shown(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS and not isinstance(action, (argparse._HelpAction,
                                                                          argparse._SubParsersAction))


def cell(text: str) -> str:
    """Help text for Markdown: one line; outside `code` spans, characters Markdown would read as markup escaped."""
    parts = " ".join(str(text).split()).split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside backticks
        parts[i] = parts[i].translate(MARKUP)
    return "`".join(parts).replace("|", "\\|")


def expanded_help(action: argparse.Action, prog: str) -> str:
    """The help string with argparse's %(...)s placeholders filled in, as --help prints it."""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return (action.help or "") % params


def value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    metavar = action.metavar or (action.dest if not action.option_strings else action.dest.upper())
    return " ".join(metavar) if isinstance(metavar, tuple) else metavar


def default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.required or action.default in (None, argparse.SUPPRESS):
        return ""
    if isinstance(action.default, (list, tuple)):
        return ",".join(map(str, action.default))
    return str(action.default)


def synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    parts = [name]
    for action in parser._actions:
        if not shown(action):
            continue
        if not action.option_strings:
            parts.append(value(action) + (" ..." if action.nargs in ("+", "*") else ""))
        elif action.required:
            parts.append(f"{action.option_strings[-1]} {value(action)}".strip())
    if any(shown(a) and a.option_strings and not a.required for a in parser._actions):
        parts.append("[options]")
    return " ".join(parts)


def option_table(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    lines = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if shown(a)]
        if not actions:
            continue
        if group is parser._positionals:
            title = "Arguments"
        elif group is parser._optionals:
            title = "Options"
        else:
            title = group.title[0].upper() + group.title[1:]
        lines += [f"**{cell(title)}**", "", "| option | value | default | description |", "|---|---|---|---|"]
        for action in actions:
            names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{value(action)}`"
            val = f"`{value(action)}`" if action.option_strings and value(action) else ""
            text = expanded_help(action, prog)
            dflt = f"`{default(action)}`" if default(action) and "default" not in text else ""
            text = text + (" (required)" if action.required and action.option_strings else "")
            lines.append(f"| {names} | {cell(val)} | {cell(dflt)} | {cell(text)} |")
        lines.append("")
    return lines


def render() -> str:
    parser = build_parser()
    lines = [HEADER, "```text", synopsis("maskgit", parser).replace("[options]", "COMMAND [options]"), "```", ""]
    commands = subcommands(parser)
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#maskgit-{name}) | {cell(help_text)} |" for name, (help_text, _) in commands.items()]
    lines.append("")
    lines += option_table(parser, "maskgit")
    for name, (help_text, sub) in commands.items():
        prog = f"maskgit {name}"
        lines += [f"## maskgit {name}", "", cell(sub.description or help_text), "",
                  "```text", synopsis(prog, sub), "```", ""]
        lines += option_table(sub, prog)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Write docs/reference/cli.md from maskgit's argument parser.")
    cli.add_argument("--check", action="store_true", help="compare with the committed page instead of writing it")
    args = cli.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run `python docs/gen_cli.py`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
