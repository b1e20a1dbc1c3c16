"""`bench run` and `bench ablate` options come from one declaration (``bench.plan.RunOptions``)."""
import dataclasses
import shlex

import typer
from typer.main import get_command
from typer.testing import CliRunner

from bench.cli import app, with_run_options
from bench.plan import RunOptions


def _options(name: str) -> dict:
    cmd = get_command(app).commands[name]
    return {p.name: p for p in cmd.params}


def test_every_run_option_is_on_run_and_ablate_with_its_declared_help():
    run, ablate = _options("run"), _options("ablate")
    for f in dataclasses.fields(RunOptions):
        for cmd in (run, ablate):
            assert f.name in cmd, f.name
            assert cmd[f.name].help == f.metadata["help"]
    assert run["models"].opts == ["--models", "-m"] and run["seeds"].default == "0" and run["amp"].default == "none"
    assert run["channels_last"].is_flag and not run["channels_last"].secondary_opts  # --channels-last alone
    # each command keeps its own options beside them
    assert {"resume", "nproc", "clip", "out", "config"} <= set(run) and {"vary", "clip"} <= set(ablate)
    assert "resume" not in ablate


def test_a_decorated_command_receives_the_options_it_was_given():
    got = {}
    sub = typer.Typer()

    @sub.command()
    @with_run_options
    def probe(options: dict, tag: str = typer.Option("x")) -> None:
        got["opts"], got["tag"] = RunOptions.from_text(options), tag

    @sub.command()
    def other() -> None:  # a second command, so the probe is addressed by name
        pass

    res = CliRunner().invoke(sub, ["probe", "--models", "pool_avg", "--seeds", "1,2", "--frames", "3", "--compile",
                                   "--tag", "y"])
    assert res.exit_code == 0, res.output
    opts = got["opts"]
    assert (opts.models, opts.seeds, opts.frames, opts.compile, opts.amp) == ("pool_avg", (1, 2), 3, True, "none")
    assert got["tag"] == "y" and opts.profile == RunOptions().profile


def _parse(argv: list[str]):
    """The subcommand context click builds for ``bench ARGV`` (parsed only, nothing runs)."""
    group = get_command(app)
    root = group.make_context("bench", list(argv), resilient_parsing=True)
    name, cmd, rest = group.resolve_command(root, root._protected_args + root.args)
    return cmd.make_context(name, rest, parent=root)


def _every_option_given(name: str) -> list[str]:
    """``bench --plugin ... NAME`` with every option of NAME set: flags on, values with spaces and shell
    specials, repeatable options twice."""
    argv = ["--plugin", "my plugins/a.py", "--plugin", "b.py", name]
    for p in get_command(app).commands[name].params:
        if p.param_type_name != "option" or p.name == "help":
            continue
        if p.is_flag:
            argv.append(p.opts[0] if p.default is not True else p.secondary_opts[0])
            continue
        value = {"int": "3", "float": "0.25"}.get(p.bare_type(), f"{p.name} x,y;'$z'")
        argv += [p.opts[0], value] * (2 if p.multiple else 1)
    return argv


def test_recorded_command_round_trips_every_option_of_run_and_ablate():
    from bench.cli import _command_line

    for name in ("run", "ablate"):
        given = _parse(_every_option_given(name))
        line = _command_line(given)
        again = _parse(shlex.split(line)[1:])
        assert again.params == given.params, name  # every boolean flag, list and repeatable option, verbatim
        assert again.parent.params["plugin"] == given.parent.params["plugin"] == ["my plugins/a.py", "b.py"]
        assert _command_line(again) == line
        flags = [p for p in again.command.params if getattr(p, "is_flag", False) and p.name != "help"]
        assert flags and all(p.opts[0] in shlex.split(line) for p in flags)
        assert " True" not in line and " False" not in line
