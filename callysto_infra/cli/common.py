"""What every command shares: the group class that turns errors into one line, the common
options, JSON-or-text output and typed confirmations. Only Click is imported here so that
'callysto --help' stays fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

CONTEXT_SETTINGS = {
    "help_option_names": ["-h", "--help"],
    "terminal_width": 80,
    "max_content_width": 80,
    "show_default": True,  # an option with a default says it in --help, whichever command
}


class Count(click.IntRange):
    """A whole number from MIN to MAX written as digits only: Python's int() would also take
    '3\n', ' 3', '+3' or '3_0'."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not (value.isascii() and value.isdigit()):
            self.fail(f"{value!r} is not a whole number (digits only)", param, ctx)
        return super().convert(value, param, ctx)


def _command_path(ctx: click.Context | None) -> str:
    return ctx.command_path if ctx is not None else "callysto"


class CallystoGroup(click.Group):
    """A group whose errors are one line on stderr (exit 2 for bad input, 1 for a failure), or a
    traceback after --debug."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Click parses --debug, so only the top level's counts: a '--debug' in a command run on a
        # hub ('ssh shell HOST -- cmd --debug') is that command's, not ours.
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                is_eager=True,
                expose_value=False,
                callback=self._record_debug,
                help="Show tracebacks instead of one-line errors.",
            )
        )
        self.debug = False

    def _record_debug(self, ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            self.debug = True

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from callysto_infra.errors import CallystoError

        self.debug = False  # set again by --debug's callback if this run was given it
        from callysto_infra import runner

        runner.interrupt_on_hangup()
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            where = _command_path(exc.ctx)
            fix = f" (see '{where} --help')"
            click.echo(f"error: {exc.format_message()}{fix}", err=True)
            sys.exit(2)
        except click.Abort as exc:
            # Click turns Ctrl-C into Abort too: an interrupted command may have changed things.
            if isinstance(exc.__cause__, KeyboardInterrupt):
                click.echo("interrupted", err=True)
                sys.exit(130)
            click.echo("aborted: nothing was changed", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except CallystoError as exc:
            if self.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def env_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--env NAME, also taken from CALLYSTO_ENV. Resolved (and validated) by load_env()."""
    return click.option(
        "--env",
        "env_name",
        envvar="CALLYSTO_ENV",
        metavar="NAME",
        help="Environment (directory under envs/); default $CALLYSTO_ENV.",
    )(func)


def flag(*decls: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An on/off option, off unless given."""
    return click.option(*decls, is_flag=True, help=help)


json_option = flag("--json", "as_json", help="Print one JSON document on stdout and nothing else.")


def host_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--host",
        metavar="HOST",
        help="Hub to act on; default: the environment's only hub, or the one holding the user.",
    )(func)


def hub_options(*, json: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--env, --host and (unless json=False) --json: the options of a command acting on hubs."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        return env_option(host_option(json_option(func) if json else func))

    return apply


def from_group(*names: str) -> Callable[[click.Command], click.Command]:
    """A subcommand's options NAMES, when left out, take what its group was given: 'backup homes
    --env X status' is 'backup homes status --env X'. Goes above the subcommand's decorator."""

    def group_value(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None and ctx.parent is not None:
            return ctx.parent.params.get(param.name)
        return value

    def apply(command: click.Command) -> click.Command:
        params = {param.name: param for param in command.params}
        for name in names:
            params[name].callback = group_value
        return command

    return apply


def typed(question: str) -> str:
    """What the operator types at QUESTION, stripped: for confirmations that must be typed out
    (a name or a hash), where pressing Enter gives '' and so goes no further."""
    return click.prompt(question, default="", show_default=False, err=True).strip()


def load_env(name: str | None):
    """The validated environment NAME (UsageError when missing, unknown or invalid)."""
    from callysto_infra import environments

    return environments.load(name)


def load_state_env(name: str | None):
    """The environment NAME for a command that only reads its Terraform state: found the lean way
    (tfstate.locate: no env.yaml validation, no pydantic) when it has a state, else loaded in full,
    which also says what is missing or wrong."""
    from callysto_infra import tfstate

    return tfstate.locate(name) or load_env(name)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True))


def emit(as_json: bool, document: Any, lines: Iterable[str]) -> None:
    """DOCUMENT as JSON with --json, else LINES, one a line."""
    if as_json:
        emit_json(document)
    else:
        for line in lines:
            click.echo(line)


def validated(check: Callable[[str], str]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A Click callback that runs one of callysto_infra.validate's checks."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(check(v) for v in value)
        return check(value)

    return callback
