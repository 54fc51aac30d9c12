"""Shell completion for the ``channels`` command, generated from its argument parser.

The script is plain bash, written out by ``channels completion bash``, so
completing a word never starts Python and needs no extra package.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from typing import cast

__all__ = ["bash_script"]


def bash_script(
    parser: argparse.ArgumentParser, prog: str, values: Mapping[str, Sequence[str]]
) -> str:
    """A bash script that completes ``prog``'s commands, options and option values.

    Args:
        parser: the top-level parser, with one sub-parser per command.
        prog: the command's name.
        values: words to offer after an option that has no ``choices`` of its own,
            such as ``--backend``.
    """
    commands = _commands(parser)
    func = "_" + prog.replace("-", "_") + "_complete"
    value_cases: list[str] = []
    word_cases = [_case('""', _words(parser, [*commands]))]
    for name, sub in commands.items():
        for action in _actions(sub):
            if not action.option_strings or action.nargs == 0:
                continue  # a positional or a flag: nothing to complete after it
            words = _choices(action) or list(values.get(action.option_strings[-1], ()))
            pattern = "|".join(f"{name}:{option}" for option in action.option_strings)
            value_cases.append(_case(pattern, words))
        positionals = [w for a in _actions(sub) if not a.option_strings for w in _choices(a)]
        word_cases.append(_case(name, _words(sub, positionals)))
    return "\n".join(
        [
            f'# bash completion for {prog}; load it with: eval "$({prog} completion bash)"',
            f"{func}() {{",
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
            "    local cmd='' i",
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            "        case ${COMP_WORDS[i]} in",
            f"            {'|'.join(commands)}) cmd=${{COMP_WORDS[i]}}; break ;;",
            "        esac",
            "    done",
            '    case "$cmd:$prev" in',
            *value_cases,
            "    esac",
            '    case "$cmd" in',
            *word_cases,
            "    esac",
            "}",
            f"complete -F {func} {prog}",
            "",
        ]
    )


def _case(pattern: str, words: Sequence[str]) -> str:
    offer = shlex.quote(" ".join(words))
    return f'        {pattern}) COMPREPLY=($(compgen -W {offer} -- "$cur")); return ;;'


def _words(parser: argparse.ArgumentParser, extra: Sequence[str]) -> list[str]:
    """Every option string of ``parser``, then ``extra``."""
    return [o for a in _actions(parser) for o in a.option_strings] + list(extra)


def _choices(action: argparse.Action) -> list[str]:
    return [str(choice) for choice in action.choices or ()]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-parser of each command, by name."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in _actions(parser):
        choices: object = action.choices  # a dict on the action that holds the commands
        if isinstance(choices, dict):
            for name, sub in cast("dict[object, object]", choices).items():
                if isinstance(name, str) and isinstance(sub, argparse.ArgumentParser):
                    found[name] = sub
    return found


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return list(parser._actions)  # pyright: ignore[reportPrivateUsage]  # no public listing
