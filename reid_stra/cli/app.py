"""Entry point of the ``reid-stra`` command.

Each sub-command lives in its own ``cmd_*.py`` module exposing ``register(app)``. Errors the
user can fix (:class:`ReidError`) print one line and exit 2; an unexpected exception prints one
line too unless ``--debug`` is given, which shows the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from reid_stra._version import __version__
from reid_stra.cli import (
    cmd_adapt,
    cmd_data,
    cmd_demo,
    cmd_evaluate,
    cmd_explain,
    cmd_export,
    cmd_extract,
    cmd_index,
    cmd_models,
    cmd_search,
    cmd_train,
)
from reid_stra.cli.output import error, info
from reid_stra.errors import Interrupted, ReidError

# click's UsageError (unknown option, missing argument, bad value), reached through typer's public
# BadParameter: typer has vendored click since 0.2x and depended on it before.
UsageError = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


class _FlagsAsFlags:
    """typer gives flags such as ``--json`` a ``<bool>`` value slot in the help (and ``--json
    true`` is then rejected): show them as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsAsFlags, TyperCommand):
    pass


class _Group(_FlagsAsFlags, TyperGroup):
    pass


app = typer.Typer(
    name="reid-stra",
    help="Person re-identification with Structure-Regularized Attention (StRA).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=_Group,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"reid-stra {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Train, evaluate, extract and search person re-ID models."""
    if isinstance(ctx.obj, dict):  # run() passes a dict in, to read the parsed --debug after an error
        ctx.obj["debug"] = debug


for _module in (
    cmd_demo,
    cmd_data,
    cmd_models,
    cmd_train,
    cmd_adapt,
    cmd_evaluate,
    cmd_extract,
    cmd_search,
    cmd_index,
    cmd_explain,
    cmd_export,
):
    _module.register(app)


class _Stopped(Exception):
    """Ctrl-C/SIGTERM inside a command, carried past typer (which would turn it into a silent 130)."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


def _stop_reporting(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)  # typer reads the options from the wrapped signature
    def run_command(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise _Stopped(exc) from None

    return run_command


def _prepare_commands(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        command.callback = _stop_reporting(command.callback)
        if command.cls in (None, TyperCommand):
            command.cls = _Command
    for group in typer_app.registered_groups:
        group.cls = _Group  # the group's own --help
        _prepare_commands(group.typer_instance)


_prepare_commands(app)


def _debug(parsed: dict[str, bool]) -> bool:
    """``--debug`` as parsed, or ``REID_STRA_DEBUG=1`` (for a command line one cannot edit)."""
    return parsed.get("debug", False) or os.environ.get("REID_STRA_DEBUG", "") not in ("", "0")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (used by tests and :func:`main`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    parsed: dict[str, bool] = {}  # the root options as parsed (filled once parsing succeeds)
    received: list[int] = []
    try:
        with _terminate_as_interrupt(received):
            # Not standalone: usage errors come back as exceptions, printed as our one-line errors.
            code = app(args=args, prog_name="reid-stra", standalone_mode=False, obj=parsed)
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was shown; nothing else to say
            return exc.exit_code
        command = exc.ctx.command_path if exc.ctx is not None else "reid-stra"
        message = " ".join(exc.format_message().split()).rstrip(".")
        error(f"{command}: {message}; see '{command} --help'")
        return 2
    except (_Stopped, KeyboardInterrupt) as exc:
        info(_interrupted_line(exc.interrupt if isinstance(exc, _Stopped) else exc, args))
        return 128 + (received[0] if received else signal.SIGINT)
    except ReidError as exc:
        if _debug(parsed):
            traceback.print_exc()
        error(str(exc))
        return ReidError.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if _debug(parsed):
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        error(f"unexpected {type(exc).__name__}: {message} (rerun with --debug for details)")
        return 1


@contextlib.contextmanager
def _terminate_as_interrupt(received: list[int]) -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's time limit) stops the work the way Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_line(exc: BaseException, args: Sequence[str]) -> str:
    """One line: what was kept, and the command that continues (``--resume`` added)."""
    if not isinstance(exc, Interrupted):
        return "interrupted; nothing was saved (the command writes its output only when it finishes)"
    if not exc.resumable:
        return f"interrupted: {exc.kept}"
    again = list(args) + ([] if "--resume" in args else ["--resume"])
    return f"interrupted: {exc.kept}; continue with: reid-stra {shlex.join(again)}"


def main() -> None:
    sys.exit(run())
