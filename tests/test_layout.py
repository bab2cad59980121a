"""The layers (docs/architecture.md), enforced: each library package imports only the packages below it
(common < filters < lm < scaling, rl < flows; common, the ground floor, imports nothing of lmforge's), so there
is no import cycle between packages, and no library package imports Prefect."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# what each package may import from the project; flows, the orchestration layer, may import all
ALLOWED = {
    "common": set(),
    "filters": {"common"},
    "lm": {"common", "filters"},
    "scaling": {"common", "filters", "lm"},
    "rl": {"common", "filters", "lm"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute import in the file, function-level ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_library_packages_import_only_the_layers_below_them_and_never_prefect():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).glob("*.py")):
            for module in imported_modules(path):
                top = module.split(".")[0]
                if top == "prefect" or top == "prefect_dask":
                    wrong.append(f"{path.relative_to(REPO)} imports {module} (library code never imports Prefect)")
                elif top in {*ALLOWED, "flows"} and top != package and top not in allowed:
                    wrong.append(
                        f"{path.relative_to(REPO)} imports {module}: {package} may import only {sorted(allowed)}"
                    )
    assert not wrong, "\n".join(wrong)
