"""The package's structure: imports run one way, and the documented import paths keep working.

The import graph is read from the source (every ``import`` and ``from ... import``, including those
inside functions and under ``TYPE_CHECKING``), so a cycle fails here even when Python would happen
to resolve it at run time.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "bgtask"

# Lower layers never import higher ones: (module prefix, prefixes it must not import).
FORBIDDEN = {
    "bgtask.models": ("bgtask.",),
    "bgtask.store": (
        "bgtask.worker",
        "bgtask.enqueue",
        "bgtask.web",
        "bgtask.decorators",
        "bgtask.bulk",
        "bgtask.registry",
        "bgtask.features",
        "bgtask.aws",
    ),
    "bgtask.clock": ("bgtask.store", "bgtask.worker", "bgtask.enqueue", "bgtask.web"),
    # The worker runs tasks; it never reaches up into the public API, the web side or commands.
    "bgtask.worker": (
        "bgtask.decorators",
        "bgtask.bulk",
        "bgtask.periodic",
        "bgtask.web",
        "bgtask.admin",
        "bgtask.management",
        "bgtask.aws",
    ),
    "bgtask.worker.execution": ("bgtask.worker.batch", "bgtask.worker.runner"),
    "bgtask.worker.completer": ("bgtask.worker.batch", "bgtask.worker.runner"),
    # The enqueue side writes rows; it never runs them.
    "bgtask.enqueue": ("bgtask.worker", "bgtask.web", "bgtask.decorators", "bgtask.bulk"),
    "bgtask.web": ("bgtask.worker.batch", "bgtask.worker.runner", "bgtask.management"),
    # The issue-13 circle: TaskFunction's room uses none of the modules that use it.
    "bgtask.registry": ("bgtask.decorators", "bgtask.bulk", "bgtask.enqueue.task_function"),
    "bgtask.features": (
        "bgtask.worker.batch",
        "bgtask.worker.runner",
        "bgtask.decorators",
        "bgtask.bulk",
    ),
}
# Where an import inside a function is the right thing: Django loads the package before its
# models (bgtask/__init__.py) and wires an app up in AppConfig.ready() (apps.py).
# bgtask.testing loads its names the same lazy way; its pytest plugin is loaded by pytest before
# pytest-django configures Django, so its fixtures import bgtask when they run.
FUNCTION_IMPORTS_ALLOWED = {"bgtask", "bgtask.apps", "bgtask.testing", "bgtask.testing.plugin"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if "migrations" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.targets: set[str] = set()
        self.in_function: list[str] = []
        self.depth = 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def _add(self, target: str) -> None:
        self.targets.add(target)
        if self.depth:
            self.in_function.append(target)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith("bgtask"):
                self._add(_resolve(alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not node.module or not node.module.startswith("bgtask"):
            return
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            self._add(full if full in MODULES else _resolve(node.module))


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    graph, in_functions = {}, {}
    for name, path in MODULES.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(), str(path)))
        deps = set(visitor.targets)
        # Importing a.b.c runs a.b's __init__ first: that is an import of a.b too...
        for target in list(deps):
            parts = target.split(".")
            deps.update(".".join(parts[:i]) for i in range(2, len(parts)))
        # ...except a package's own __init__, which any of its submodules sits inside.
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
        in_functions[name] = visitor.in_function
    return graph, in_functions


GRAPH, IN_FUNCTIONS = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_every_module():
    # A reader that silently saw nothing would pass every test below.
    assert {
        "bgtask.worker.batch",
        "bgtask.enqueue.task_function",
        "bgtask.features.periodic",
    } <= set(GRAPH)
    assert "bgtask.enqueue.task_function" in GRAPH["bgtask.decorators"]
    assert "bgtask.worker.execution" in GRAPH["bgtask.worker.batch"]
    assert "bgtask.store" in GRAPH["bgtask.worker.completer"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_is_no_import_cycle():
    # The package root is left out: it only names what it loads on first use.
    graph = {name: deps - {"bgtask"} for name, deps in GRAPH.items() if name != "bgtask"}
    assert _cycles(graph) == []


@pytest.mark.parametrize("module, forbidden", sorted(FORBIDDEN.items()))
def test_imports_run_one_way(module, forbidden):
    checked = [name for name in GRAPH if name == module or name.startswith(module + ".")]
    assert checked, f"no module named {module}"
    wrong = sorted(
        f"{name} imports {target}"
        for name in checked
        for target in GRAPH[name]
        if target.startswith(forbidden) or f"{target}." in forbidden
    )
    assert wrong == []


def test_no_module_imports_inside_a_function_to_dodge_a_cycle():
    inside = {
        name: targets
        for name, targets in IN_FUNCTIONS.items()
        if targets and name not in FUNCTION_IMPORTS_ALLOWED
    }
    assert inside == {}


def test_nothing_inside_the_package_imports_a_name_the_root_loads_lazily():
    # Such an import would run the root's __getattr__ and hide the real dependency.
    lazy = {
        "background",
        "TaskFunction",
        "run_batch",
        "BatchResult",
        "enqueue_many",
        "Call",
        "cancel",
        "pause_queue",
        "resume_queue",
    }
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "bgtask":
                offenders += [f"{name}: {a.name}" for a in node.names if a.name in lazy]
    assert offenders == []


def test_the_features_are_grouped_apart_from_the_core():
    features = {name for name in MODULES if name.startswith("bgtask.features.")}
    assert features == {
        f"bgtask.features.{name}"
        for name in (
            "cancellation",
            "hooks",
            "limits",
            "pausing",
            "periodic",
            "pruning",
            "repeating",
            "retrying",
            "uniqueness",
        )
    }
    for name in ("repeating", "uniqueness"):
        assert importlib.util.find_spec(f"bgtask.{name}") is None, f"bgtask/{name}.py is back"


def test_importing_the_package_loads_no_model():
    # Django imports "bgtask" while reading INSTALLED_APPS; nothing may need the app registry then.
    code = (
        "import sys, bgtask; "
        "loaded = sorted(m for m in sys.modules if m.startswith('bgtask.')); "
        "print(loaded); assert loaded == [], loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_documented_import_paths_work():
    import bgtask
    from bgtask.bulk import Call, enqueue_many
    from bgtask.cancellation import cancel, cancel_queued
    from bgtask.decorators import TaskFunction, background
    from bgtask.features import cancellation, periodic, pruning
    from bgtask.periodic import periodic as periodic_decorator
    from bgtask.pruning import prune

    assert bgtask.background is background
    assert bgtask.TaskFunction is TaskFunction
    assert bgtask.enqueue_many is enqueue_many and bgtask.Call is Call
    assert bgtask.cancel is cancel is cancellation.cancel
    assert cancel_queued is cancellation.cancel_queued
    assert periodic_decorator is periodic.periodic
    assert prune is pruning.prune
    from bgtask.features import pausing

    assert bgtask.pause_queue is pausing.pause_queue
    assert bgtask.resume_queue is pausing.resume_queue
    from bgtask import BatchResult, run_batch
    from bgtask.worker.batch import BatchResult as batch_result
    from bgtask.worker.batch import run_batch as batch_run

    assert (run_batch, BatchResult) == (batch_run, batch_result)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        bgtask.nothing_here  # noqa: B018
    assert set(bgtask.__all__) <= set(dir(bgtask))


# -- store/ is the only code that writes a task row ------------------------------------------------

# Calls that write rows through the ORM. ``update`` counts when called on a query (a call chain
# such as ``Task.objects.filter(...).update(...)``); on a plain name it is usually a dict's.
ROW_WRITES = {"save", "delete", "bulk_create", "bulk_update", "create", "get_or_create"}
# Writes to tables of their own (not bgtask_task), by module: the receivers they write through.
OWN_TABLES = {
    # PeriodicOccurrence, one row per @periodic schedule (``table`` is its manager).
    "bgtask.features.periodic": ("table", "PeriodicOccurrence"),
    # ImportedTask, the import's bookkeeping of copied rows.
    "bgtask.enqueue.legacy_import": ("ImportedTask",),
    # QueueState, one row per paused (or once paused) queue.
    "bgtask.features.pausing": ("states", "QueueState"),
}


def _task_row_writes(path: Path, own: tuple[str, ...] = ()) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, receiver = node.func.attr, node.func.value
        on_query = isinstance(receiver, ast.Call) or (
            isinstance(receiver, ast.Attribute) and receiver.attr == "objects"
        )
        if own and ast.unparse(receiver).startswith(own):
            continue
        if name in ROW_WRITES or (name in {"update", "raw"} and on_query):
            found.append(f"{path.name}:{node.lineno} .{name}()")
    return found


def test_only_the_store_writes_task_rows():
    writers = {
        name: writes
        for name, path in MODULES.items()
        if not name.startswith("bgtask.store")
        and (writes := _task_row_writes(path, OWN_TABLES.get(name, ())))
    }
    assert writers == {}


def test_the_row_write_finder_sees_writes():
    sample = PACKAGE_DIR.parent / "build" / "layers_sample.py"
    sample.parent.mkdir(exist_ok=True)
    sample.write_text(
        "Task.objects.filter(pk=1).update(status='x')\ntask.save()\nsummary.update(a=1)\n"
    )
    assert [w.split(" ")[1] for w in _task_row_writes(sample)] == [".update()", ".save()"]
