"""Dependencies point one way: the layers in pyproject.toml and the import-linter contracts hold.

Interfaces (app, cli, graphql, web, worker, demo) -> services (settlement, network; partners,
members; auth) -> ledger -> the table layer (``coalition.models``, every ``coalition.*.models``)
-> db, and the network analysis imports no database code (docs/architecture.md). A new import
against the flow fails here (and the import-linter contract in ``make lint``).
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [[name.strip() for name in line.split(":")]
          for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coalition"]["layers"]["layers"]]


def layer_of(module: str) -> int | None:
    """The index of the layer whose most specific entry names ``module`` (or a package above it)."""
    best: tuple[int, int] | None = None
    parts = module.split(".")
    for index, line in enumerate(LAYERS):
        for pattern in line:
            wanted = pattern.split(".")
            named = len(parts) >= len(wanted) and all(
                fnmatch.fnmatchcase(p, w) for p, w in zip(parts[:len(wanted)], wanted, strict=True))
            if named and (best is None or len(wanted) > best[1]):
                best = (index, len(wanted))
    return None if best is None else best[0]


def test_a_module_belongs_to_its_most_specific_layer() -> None:
    ledger, tables = layer_of("coalition.ledger.core"), layer_of("coalition.members.models")
    assert ledger is not None and tables is not None and tables > ledger
    assert layer_of("coalition.ledger.models") == tables
    members = layer_of("coalition.members.service")
    assert members is not None and members < ledger
    assert layer_of("coalition.members.referrals") == members
    assert layer_of("coalition.auth.service") not in (None, members)
    assert layer_of("coalition.errors") is None


def test_every_import_points_down_the_layers() -> None:
    graph = grimp.build_graph("coalition")
    lowest_shared = len(LAYERS) - 2  # a module in no layer may use the table layer and db only
    upward = []
    for module in sorted(graph.modules):
        here = layer_of(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            there = layer_of(imported)
            if there is None:
                continue
            if (here is None and there < lowest_shared) or (here is not None and there < here):
                upward.append(f"{module} -> {imported}")
    assert upward == [], "imports against the layers (pyproject.toml [tool.coalition.layers]):\n" + "\n".join(upward)


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout, result.stdout[-2000:]
