"""`bench run` and `bench ablate` options come from one declaration (``bench.plan.RunOptions``)."""
import dataclasses

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
