"""Fail when a function in bnn_asym/inference/ or bnn_asym/bench/ is longer than 60 lines (docstring and
decorators included): a function that long does several things, and those folders are where new engines and
benchmarks are added by reading the code around them."""

import ast
import sys
from pathlib import Path

LIMIT = 60
FOLDERS = ("bnn_asym/inference", "bnn_asym/bench")


def long_functions(root: Path):
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    length = node.end_lineno - first + 1
                    if length > LIMIT:
                        yield f"{path.relative_to(root)}:{first} {node.name} is {length} lines (limit {LIMIT})"


if __name__ == "__main__":
    found = list(long_functions(Path(__file__).resolve().parent.parent))
    print("\n".join(found) or f"no function in {', '.join(FOLDERS)} is longer than {LIMIT} lines")
    sys.exit(1 if found else 0)
