"""What a workflow costs, counted from its history (issue 20): events, workflow tasks,
history bytes, and Temporal Cloud's billable actions, by the rules in
``workers/history_cost.py`` (which the simulator counts its applications by too).

    .venv/bin/python -m bench.cost                       # every baseline in tests/histories
    .venv/bin/python -m bench.cost FILE.json [FILE.json ...] [--json]

A history is a JSON file as ``temporal workflow show --output json`` writes it (the
recorded baselines are).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from temporalio.client import WorkflowHistory

from workers.history_cost import Cost, cost_of

__all__ = ["BASELINES", "Cost", "cost_of", "main", "read_history"]

BASELINES = Path(__file__).resolve().parent.parent / "tests" / "histories"


def read_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="histories (default: the baselines)")
    parser.add_argument("--json", action="store_true", help="one JSON object a history")
    args = parser.parse_args(argv)
    files = args.files or sorted(BASELINES.glob("*.json"))
    costs = [cost_of(f.stem, list(read_history(f).events)) for f in files]
    if args.json:
        for c in costs:
            print(json.dumps(asdict(c), ensure_ascii=False))
        return 0
    _table(costs)
    return 0


def _table(costs: list[Cost]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cost of a workflow, from its history (bench/cost.py)")
    for name in ("history", "events", "tasks", "bytes", "actions", "of which"):
        table.add_column(name, justify="left" if name in ("history", "of which") else "right")
    for c in costs:
        table.add_row(
            c.workflow_id,
            str(c.events),
            str(c.workflow_tasks),
            f"{c.history_bytes:,}",
            str(c.actions),
            ", ".join(f"{k} {v}" for k, v in c.by_action.items()),
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    sys.exit(main())
