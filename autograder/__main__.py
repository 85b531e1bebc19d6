"""Grade assignment notebooks from the command line, as the instructor's grader does.

    python -m autograder NOTEBOOK.ipynb [NOTEBOOK.ipynb ...] [--timeout SECONDS] [--json]

Runs each notebook's cells in a sandbox and grades its test cells outside it, taken from
the course's release (:mod:`autograder.notebook`), prints a per-check report and the
total, and exits with 0 when every notebook earns full marks, 1 when some points are
missing, and 2 when a notebook cannot be graded at all (not a notebook, broken JSON, no
graded cells, no sandbox on this machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .notebook import NotebookError, format_result, grade_notebook
from .sandbox import SandboxUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Grade the course's assignment notebooks and explain every failed check.",
    )
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK.ipynb")
    parser.add_argument("--timeout", type=int, default=120, metavar="SECONDS",
                        help="the most one cell may run (default: %(default)s)")
    parser.add_argument("--probe-timeout", type=int, default=60, metavar="SECONDS",
                        help="the most one observation of a check may run (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)

    status = 0
    results = []
    for path in args.notebooks:
        try:
            result = grade_notebook(path, timeout=args.timeout, probe_timeout=args.probe_timeout)
        except (NotebookError, SandboxUnavailable) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
            continue
        if args.json:
            results.append({
                "notebook": str(result.path),
                "earned": result.earned,
                "points": result.points,
                "parts": [dataclasses.asdict(part) for part in result.parts],
                "cell_errors": result.cell_errors,
            })
        else:
            print(format_result(result))
        if result.earned < result.points:
            status = max(status, 1)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
