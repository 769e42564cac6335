"""The `ccnn` command line: each command lives with the code it drives and adds itself here."""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccnn", description="Copula CNN for facial action unit intensity estimation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _command_groups():
        add_commands(commands)
    return parser


def _command_groups():
    # Each group is a function(subparsers) that adds its commands with set_defaults(func=...).
    from .data_cli import add_data_commands
    from .train_cli import add_train_commands

    return [add_data_commands, add_train_commands]


def main(argv=None) -> int:
    from .trainer import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, TrainingDiverged) as exc:  # a message, not a traceback
        print(f"ccnn {args.command}: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, TrainingDiverged) else 2  # 2: bad input


if __name__ == "__main__":
    sys.exit(main())
