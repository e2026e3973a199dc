"""The `broadcaster` command line: thin over operations, the store and the engine.

Exit codes: 0 ok, 1 failure, 2 bad input or configuration (nothing was sent), 3 partially
delivered (some recipients failed), 130 interrupted. Every flag can also be set through the
`BROADCASTER_*` environment variable shown in `--help`. Each command group lives in its own
module with a `register(commands)` function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from broadcaster import __version__, gc_policy
from broadcaster.cli.options import Emitted, Handler, Parser, flag, switch
from broadcaster.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BindError, BroadcasterError
from broadcaster.logs import configure_logging
from broadcaster.settings import Settings

# Older spellings, kept for modules that import them from here.
_flag = flag
_switch = switch

EPILOG = """\
examples:
  broadcaster demo                                   # everything embedded: try it first
  broadcaster db migrate
  broadcaster subscribers import subscribers.csv
  broadcaster areas
  broadcaster preview --area dep:75 --area dep:92 --template outage
  broadcaster send --area dep:75 --template outage --var fallback_number="01 53 71 53 71"

Every command works on DATABASE_URL; only `demo` starts a throwaway PostgreSQL of its own.
exit codes: 0 ok, 1 failure, 2 bad input (nothing sent), 3 partially delivered, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    from broadcaster.cli import api, broadcasts, check, config, control, data, drills, geo
    from broadcaster.cli.mock_smsc import add_mock_smsc_command

    parser = Parser(
        prog="broadcaster",
        description="Send area-targeted public-guidance SMS through SMPP, fast and safely.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"broadcaster {__version__}")
    flag(parser, "--config", env="BROADCASTER_CONFIG", type=Path, help="TOML settings file")
    flag(
        parser,
        "--database-url",
        env="DATABASE_URL",
        help="PostgreSQL URL of the subscriber and broadcast database (also accepted after "
        "the command); demo only borrows its server for a scratch database it drops",
    )
    switch(parser, "--log-json", "BROADCASTER_LOG_JSON", "JSON log lines on stderr")
    flag(parser, "--log-level", env="BROADCASTER_LOG_LEVEL", default="info", help="log level")
    switch(parser, "--json", "BROADCASTER_JSON", "print one JSON object on stdout (for scripts)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data.register(commands)
    broadcasts.register(commands)
    control.register(commands)
    add_mock_smsc_command(commands)
    api.register(commands)
    check.register(commands)
    config.register(commands)
    drills.register(commands)
    geo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    Emitted.json = False
    try:
        parser = build_parser()
        Parser.argv, Parser.root = list(sys.argv[1:] if argv is None else argv), parser
        args = parser.parse_args(argv)
        configure_logging(json=args.log_json, level=args.log_level)
        env = dict(os.environ)
        if args.database_url:
            env["DATABASE_URL"] = args.database_url
        settings = Settings.load(env, args.config)
        handler: Handler = args.handler
        if argv is None and settings.gc_tuned:  # the process's own command line (not a test's)
            gc_policy.settle()
        return asyncio.run(handler(args, settings))
    except BroadcasterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args is not None and getattr(args, "json", False) and not Emitted.json:
            # A script reading stdout still gets its one JSON object: what went wrong.
            bind_failed = isinstance(exc, BindError) or isinstance(exc.__cause__, BindError)
            kind = "BindError" if bind_failed else type(exc).__name__
            error = {"error": str(exc), "kind": kind, "exit_code": exc.exit_code}
            print(json.dumps(error), flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
