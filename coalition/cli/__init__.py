"""The ``coalition`` command (also ``python -m coalition``).

``serve``, ``migrate`` and ``demo`` create or upgrade the database; the other commands
expect a migrated one and say so. Settings come from the environment
(:func:`coalition.config.load_settings`). API keys appear on the terminal once, when
they are made (``demo``, ``keys create``), and never in a log.

This module holds the group and ``main``; the commands live by area beside it (``serve``,
``demo``, ``keys``, ``members``, ``ledger``, ``analyze``, ``reconcile``, ``settle``, ``verify``,
``policy``, ``worker``, ``programs``, ``portability``: import and export, ``giftcards``: printing a card
just sold), and what they share in ``_common``.
"""

from __future__ import annotations

import click

from coalition import __version__
from coalition.cli import (
    analyze,
    demo,
    giftcards,
    keys,
    ledger,
    members,
    policy,
    portability,
    programs,
    reconcile,
    serve,
    settle,
    users,
    verify,
    worker,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coalition")
def cli() -> None:
    """Coalition: a coalition rewards network for small businesses.

    Configuration comes from COALITION_* environment variables; with none the
    database is ./coalition.db (SQLite) and the master secret ./coalition.secret.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="coalition")


for command in (serve.migrate, serve.serve, demo.demo, keys.keys, members.members, ledger.expire,
                ledger.release_holds, analyze.analyze, ledger.check, reconcile.reconcile, settle.settle,
                verify.verify_statement, policy.policy, worker.worker, programs.programs, portability.import_group,
                portability.export_command, users.users, giftcards.gift_card_print):
    cli.add_command(command)
