"""Dependencies point one way: the import-linter contracts in pyproject.toml hold.

Interfaces (app, cli, graphql, web, worker, demo) -> services (settlement, network, partners,
members, auth) -> ledger -> db, and the network analysis imports no database code
(docs/architecture.md). A new import against the flow fails here, and in ``make lint``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)
    assert kept is not None and int(kept.group(1)) >= 3, result.stdout[-2000:]  # layers, the client, the analysis
