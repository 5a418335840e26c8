"""The docs follow the code: every setting and every command is documented."""

from __future__ import annotations

import click

from streams.cli import main
from streams.settings import Settings
from tests import REPO

README = (REPO / "README.md").read_text()


def test_readme_settings_table_lists_every_setting() -> None:
    missing = [name for name in Settings.model_fields if f"`LEADPULSE_{name.upper()}`" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_every_command_has_help_that_explains_it() -> None:
    context = click.Context(main)
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        assert command is not None and command.help and len(command.help.split()) >= 5, f"`leadpulse {name}` needs a --help text"
