"""The one place where the CLI turns failures into one line on stderr and exit code 2.

    bench ARGS --parse--> command --raises--> OneLineGroup.main --one_line(exc)--> "error: ..." , exit 2

Every command of ``bench`` (sub-apps included) runs under ``OneLineGroup.main``: a parse error, a known
exception (bad value, missing file, unwritable folder, full disk, locked run, out of memory) or an unexpected
one becomes a single ``error:`` line; warnings from the library become single ``warning:`` lines. Set
``FUSIONBENCH_DEBUG=1`` to get the traceback of an unexpected error instead.
"""
from __future__ import annotations

import os
import signal
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

try:
    from typer import _click as click  # typer >= 0.24 vendors click: its exceptions are these
except ImportError:  # pragma: no cover - older typer uses click itself
    import click
from typer.core import TyperGroup

from .results import RunLockedError, short_path

_ABORT: Any = getattr(click.exceptions, "Abort", ())  # click's Abort; typer's vendored click has none

# What a user can cause (and fix): shown as their message alone. Anything else is "internal error: ...".
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError, MemoryError, RunLockedError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (records kept, run marked interrupted, resume command printed)."""


def one_line(exc: BaseException) -> str:
    """A one-line message for ``exc``: its own words for user errors, the type for anything else."""
    if isinstance(exc, KeyError):
        msg = str(exc.args[0]) if exc.args else "missing key"
    elif isinstance(exc, MemoryError):
        msg = f"out of memory: {exc}" if str(exc) else "out of memory"
    elif isinstance(exc, UnicodeDecodeError):
        msg = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    elif isinstance(exc, OSError) and exc.strerror and getattr(exc, "filename", None) is not None:
        msg = f"{exc.strerror}: {short_path(exc.filename)}"
        if getattr(exc, "filename2", None) is not None:
            msg += f" -> {short_path(exc.filename2)}"
    elif isinstance(exc, USER_ERRORS):
        msg = str(exc) or type(exc).__name__
    else:
        msg = f"internal error: {type(exc).__name__}: {exc} (FUSIONBENCH_DEBUG=1 shows the traceback)"
    return " ".join(msg.split())  # one line, whatever the message held


def print_error(message: str) -> None:
    """``error: message`` on stderr, never read as rich markup."""
    from rich.markup import escape

    from .console import err_console

    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    from rich.markup import escape

    from .console import err_console

    err_console.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(message).split()))}", highlight=False,
                      soft_wrap=True)


class OneLineGroup(TyperGroup):
    """The ``bench`` group: runs a command and renders whatever escapes it as one line (see module doc)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        code = 0
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
                if not standalone_mode:
                    return rv
                code = rv if isinstance(rv, int) else 0  # click returns an Exit's code in this mode
            except click.exceptions.NoArgsIsHelpError as exc:  # `bench` alone: Typer printed the help already
                code = exc.exit_code
            except click.ClickException as exc:  # parse errors: one line instead of Typer's box
                cmd = exc.ctx.command_path if getattr(exc, "ctx", None) else "bench"
                print_error(f"{exc.format_message()} (see: {cmd} --help)")
                code = exc.exit_code if exc.exit_code else 2
            except _ABORT:  # click's Abort (typer's vendored click has none: catches nothing there)
                print_error("aborted")
                code = 1
            except KeyboardInterrupt as exc:
                code = 143 if isinstance(exc, Terminated) else 130
            except Exception as exc:  # noqa: BLE001 - the house rule: bad input never prints a traceback
                if os.environ.get("FUSIONBENCH_DEBUG") and not isinstance(exc, USER_ERRORS):
                    raise
                print_error(one_line(exc))
                code = 2
        if not standalone_mode:
            return code
        sys.exit(code)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises ``Terminated`` (a KeyboardInterrupt), so a killed run ends like Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
