"""The CLI surface every user meets first: help, version, unknown commands."""

from __future__ import annotations

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
