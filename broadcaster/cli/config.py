"""`broadcaster config reference`: the configuration reference, generated from the settings."""

from __future__ import annotations

import argparse

from broadcaster.cli.options import Commands, add_command, emit, flag, output_file
from broadcaster.errors import EXIT_OK, InputError
from broadcaster.settings import Settings


def register(commands: Commands) -> None:
    config = add_command(commands, "config", "the settings: their reference", _cmd_help)
    sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    reference = add_command(
        sub,
        "reference",
        "print (or write) the configuration reference: every setting, its environment variable, "
        "default and meaning (docs/configuration.md is this output)",
        _cmd_reference,
        epilog="example:\n  broadcaster config reference --output docs/configuration.md",
    )
    flag(
        reference,
        "--output",
        env="BROADCASTER_REFERENCE_OUTPUT",
        type=output_file,
        help="write the Markdown there instead of printing it",
    )


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("a sub-command is needed: see --help")


async def _cmd_reference(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.settings_reference import reference

    text = reference()
    if args.output is None:
        print(text, end="")
        return EXIT_OK
    args.output.write_text(text, encoding="utf-8")
    emit(args, {"written": str(args.output)}, f"written: {args.output}")
    return EXIT_OK
