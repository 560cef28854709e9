"""`python -m reid <command>`: one entry point, one module per command.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`; they are
imported lazily so that `python -m reid synth` does not pay for importing the model.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from reid.errors import UserError

# command name -> (module, one-line help)
COMMANDS = {
    "synth": ("reid.data.synthetic", "write the procedural synthetic dataset in the SYSU-MM01 and RegDB layouts"),
    "train": ("reid.engine", "train a model from a config"),
    "evaluate": ("reid.evaluate", "evaluate a checkpoint with the SYSU-MM01 / RegDB protocols"),
    "reproduce": ("reid.reproduce", "the main job: synthetic data -> train -> evaluate -> tables and figures"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m reid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Only the chosen command's module is imported.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
