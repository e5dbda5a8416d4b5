"""The package layout holds: imports point one way down the phases of a sweep, every
subpackage exports what it says, and the command line starts without the trainer."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SWEEPER = Path(__file__).resolve().parents[2] / "sweeper"
PHASES = ["define", "rank", "run", "after", "view"]
"""In import order: a phase may import the phases before it, never one after it."""
TOP_LEVEL_LEAVES = [
    "attrs",
    "errors",
    "paths",
    "recorded_scores",
    "text",
    "trial_result",
    "tuned_postprocess",
    "_lazy",
]
"""Top-level modules every phase may use; they import no phase."""


def _sweeper_imports(path: Path) -> set[str]:
    """The sweeper modules ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n for n in names if n == "sweeper" or n.startswith("sweeper.")}
    return found


def _phase(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PHASES else None


@pytest.mark.parametrize("phase", PHASES)
def test_a_phase_imports_only_the_phases_before_it(phase: str) -> None:
    allowed = set(PHASES[: PHASES.index(phase) + 1])
    wrong = {
        f"{path.name} imports {module}"
        for path in (SWEEPER / phase).glob("*.py")
        for module in _sweeper_imports(path)
        if _phase(module) is not None and _phase(module) not in allowed
    }
    assert not wrong


@pytest.mark.parametrize("leaf", TOP_LEVEL_LEAVES)
def test_top_level_leaves_import_no_phase(leaf: str) -> None:
    phases = {m for m in _sweeper_imports(SWEEPER / f"{leaf}.py") if _phase(m) is not None}
    assert not phases


def test_every_module_is_in_a_phase_or_named_at_the_top() -> None:
    top = {p.stem for p in SWEEPER.glob("*.py")}
    assert top == {*TOP_LEVEL_LEAVES, "__init__", "__main__", "cli", "demo"}
    assert {p.name for p in SWEEPER.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        PHASES
    )


@pytest.mark.parametrize("phase", PHASES)
def test_a_phase_exports_what_its_modules_define(phase: str) -> None:
    package = importlib.import_module(f"sweeper.{phase}")
    exports = package._exports
    for module, names in exports.modules().items():
        tree = ast.parse((SWEEPER / phase / f"{module}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        defined |= {
            t.id
            for n in tree.body
            if isinstance(n, ast.Assign | ast.AnnAssign)
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Name)
        }
        # Defined there, not re-exported from elsewhere: one home per name.
        assert set(names) <= defined, f"{phase}.{module}: {set(names) - defined}"
    assert package.__all__ == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_the_command_line_starts_without_torch_or_matplotlib() -> None:
    """Listing studies or ranking them must not pay seconds of torch import."""
    code = (
        "import sys, sweeper.cli, sweeper.define, sweeper.rank, sweeper.view;"
        "print(sorted(m for m in ('torch', 'matplotlib', 'timm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
