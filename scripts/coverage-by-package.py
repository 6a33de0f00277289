"""Statement coverage per package (bot/, bot/mail/, commands/, storage/, ...) from a combined
coverage data file: the table the README quotes. Usage: coverage-by-package.py DATA_FILE"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent


def main(data_file: str) -> None:
    cov = coverage.Coverage(data_file=data_file)
    cov.load()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name in cov.get_data().measured_files():
        path = Path(name).resolve()
        if not path.is_relative_to(ROOT):
            continue
        _, statements, _, missing, _ = cov.analysis2(name)
        package = str(path.parent.relative_to(ROOT))
        totals[package][0] += len(statements)
        totals[package][1] += len(statements) - len(missing)
    print("| package | statements | covered |")
    print("| --- | ---: | ---: |")
    for package, (statements, covered) in sorted(totals.items()):
        print(f"| {package}/ | {statements} | {100 * covered / max(statements, 1):.0f} % |")


if __name__ == "__main__":
    main(sys.argv[1])
