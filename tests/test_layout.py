"""The house rules of docs/design.md, checked on the source: imports run one way (each room imports
only from itself and the rooms below it), no module imports itself back through others, the model
needs only torch, modules and functions stay short, the CLI starts without torch, and ruff (lint
and format, configured in pyproject.toml) finds nothing to change."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "xformer_cli"

# "Who may import whom" of docs/design.md, lowest layer first: the rank of each room.
RANKS = {
    "errors": 0,
    "config": 1,
    "devices": 1,
    "progress": 1,
    "shipped": 1,
    "models": 0,  # the shipped model's files, no code
    "model": 2,
    "text": 3,
    "recipe": 4,
    "batching": 4,
    "bundles": 5,
    "decoding": 6,
    "evaluation": 6,
    "documents": 7,  # files with structure, over the Translator
    "xformer_cli": 7,  # the package itself: the public API, lazily
    "training": 7,
    "serve": 8,  # the HTTP server, over the Translator and documents
    "cli": 9,
    "__main__": 10,
}
STANDARD_LIBRARY = set(sys.stdlib_module_names)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The room of a module: its sub-package, or the module itself at the top of the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(path: Path) -> tuple[set[str], set[str]]:
    """The xformer_cli modules and the other top-level packages that a file imports, anywhere in it
    (lazy imports inside functions included)."""
    own, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            (own if name.split(".")[0] == "xformer_cli" else others).add(name if name.startswith("xformer_cli") else name.split(".")[0])
    return own, others


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(path): imports(path)[0] for path in SOURCES}


def test_every_room_has_a_rank():
    assert {room(module) for module in GRAPH} <= set(RANKS)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    here = room(module)
    upward = sorted(target for target in GRAPH[module] if room(target) != here and RANKS[room(target)] >= RANKS[here])
    assert not upward, f"{module} imports {upward}, a room at or above its own ({here})"


def test_no_module_imports_itself_back():
    def resolve(target: str) -> str:
        # `from xformer_cli.training import corpus_encoding` names the package; the module is meant
        return target if target in GRAPH else target.rsplit(".", 1)[0]

    edges = {module: {resolve(t) for t in targets if resolve(t) != module} for module, targets in GRAPH.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_nothing_but_the_entry_points_imports_the_cli():
    importers = sorted(m for m, targets in GRAPH.items() if room(m) not in ("cli", "__main__") and any(room(t) == "cli" for t in targets))
    assert not importers


def test_the_model_needs_only_torch_and_text_needs_no_torch():
    for path in SOURCES:
        others = imports(path)[1] - STANDARD_LIBRARY
        if room(module_name(path)) == "model":
            assert others <= {"torch"}, f"{path.name} imports {sorted(others)}"
        if room(module_name(path)) == "text":
            assert "torch" not in others, path.name


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400, "a module over 400 lines holds more than one idea"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # The body past the docstring: a command's option declarations do not count.
            first = node.body[1] if len(node.body) > 1 and isinstance(node.body[0], ast.Expr) else node.body[0]
            assert node.end_lineno - first.lineno + 1 <= 60, f"{node.name} has a body over 60 lines"


def test_the_cli_starts_without_torch_sacrebleu_or_the_hub_client():
    probe = (
        "import sys\n"
        "import xformer_cli.cli.app\n"
        "print(sorted(m for m in ('torch', 'sacrebleu', 'huggingface_hub', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_finds_nothing_to_change(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=PACKAGE.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
