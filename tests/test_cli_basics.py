"""The CLI surface every user meets first: help, version, unknown commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reid_stra import __version__


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_commands(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_unknown_command_fails(cli) -> None:
    result = cli("no-such-command")
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("args", "named", "hint"),
    [
        (["search", "q.jpg", "--topk", "3"], "--topk", "--top-k"),
        (["extract"], "INPUT", "reid-stra extract --help"),
        (["evaluate", "--max-rank", "abc"], "--max-rank", "reid-stra evaluate --help"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(cli, args, named: str, hint: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert named in lines[0] and hint in lines[0]
    assert "╭" not in result.stderr and "Usage:" not in result.stderr


@pytest.mark.slow
def test_piped_output_is_not_wrapped_at_80_columns() -> None:
    """`reid-stra models | cat` and a redirected log keep every name and table row whole."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"REID_STRA_NO_PROGRESS": "1"}
    launcher = [sys.executable, "-c", "from reid_stra.cli.app import main; main()"]
    result = subprocess.run(launcher + ["models"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ stra_resnet50_nointer ")]
    assert rows and all(len(row) > 80 for row in rows)  # whole rows, wider than a default terminal
    error = subprocess.run(launcher + ["search", "/no/such/query/with/a/very/long/path/" + "x" * 80 + ".jpg"],
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = [line for line in error.stderr.splitlines() if line.strip()]
    assert error.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), error.stderr


def _commands():
    import typer.main

    from reid_stra.cli.app import app

    def walk(command, path):
        if hasattr(command, "commands"):
            yield path, command
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    return list(walk(typer.main.get_command(app), []))


def test_help_shows_flags_as_flags_and_every_default(cli) -> None:
    """`--json true` is rejected, so no flag may show a value slot; every option says its default."""
    for path, command in _commands():
        help_text = cli(*path, "--help").stdout
        assert "Usage:" in help_text and "<bool>" not in help_text, path
        usage = next(line for line in help_text.splitlines() if "Usage:" in line).split()
        arguments = [word.strip("[]{}.") for word in usage[3 + len(path) - 1 :] if word != "[OPTIONS]"]
        assert all(a.isupper() or a == "COMMAND" or a == "ARGS" for a in arguments), (
            usage
        )  # QUERY, not query...
        assert not any("...]..." in word or "...}..." in word for word in usage), usage
        for param in command.params:
            if param.param_type_name != "option" or param.is_flag or param.required:
                continue
            stated = isinstance(param.show_default, str) or "default" in (param.help or "").lower()
            assert param.default is not None or stated, (path, param.opts)


def test_debug_is_the_parsed_root_option(cli, tmp_path, monkeypatch) -> None:
    """`reid-stra --debug CMD` adds the traceback to the one-line error; the same word as another
    option's value (here: a gallery file named --debug) is not the option and changes nothing."""
    monkeypatch.delenv("REID_STRA_DEBUG", raising=False)
    missing = tmp_path / "missing.npy"
    plain = cli("search", tmp_path / "q.jpg", "--gallery", missing)
    debug = cli("--debug", "search", tmp_path / "q.jpg", "--gallery", missing)
    assert plain.exit_code == debug.exit_code != 0
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert [line for line in debug.stderr.splitlines() if line.startswith("error")]
    monkeypatch.chdir(tmp_path)
    as_value = cli("search", tmp_path / "q.jpg", "--gallery", "--debug")
    assert as_value.exit_code != 0 and "--debug" in as_value.stderr and "Traceback" not in as_value.stderr
