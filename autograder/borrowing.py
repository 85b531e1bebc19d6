"""The parts that exist to make the learner write an update may not borrow torch's.

A part such as ``adam-optimizer`` is graded by comparing the learner's optimizer with
``torch.optim.Adam``; a class that *is* ``torch.optim.Adam`` (a subclass, a wrapper around
one, a call of ``torch.optim._functional.adam`` or of ``torch._fused_adam_``) would match
it perfectly. What runs in the sandbox cannot be trusted to say whether it borrowed: it
can undo any guard set up there before the probes run. So the judge reads the learner's
code itself, as syntax trees, before it grades such a part (:func:`borrowing`).

It follows the definition of the graded name (``Adam``) through the learner's cells: the
top-level statements that bind it or change it (``Adam.step = ...``, ``setattr(Adam,
...)``), the module-level names those read, and so on, together with every top-level
statement that changes ``torch`` itself. In what it reaches, any of these is borrowing:

- ``torch.optim`` other than ``torch.optim.Optimizer`` (the base class the exercises
  derive from) and the part's allowlist: the optimizer classes, ``_functional``, the
  modules ``torch.optim.adam``, ``torch.optim.sgd``..., and ``torch.optim`` itself as a
  value;
- ``torch._fused_*``, ``torch.ops``, ``torch._C``, and the ways of loading an object by
  its name (``torch.load``, ``torch.serialization``, ``torch.package``, ``torch.hub``,
  ``torch.library``);
- what the guard cannot resolve: ``getattr``/``setattr``/``delattr``/``hasattr`` with a
  computed name or passed around as values, ``exec``, ``eval``, ``globals()``, ``vars()``,
  ``open()``, dunder attributes that walk the object graph (``__subclasses__``,
  ``__globals__``, ``__dict__``...), and the modules that look objects up by a name
  computed at run time (``importlib``, ``pickle``, ``gc``, ``inspect``, ``sys.modules``,
  ``operator.attrgetter``...).

References are resolved however they are spelled: ``import torch.optim as o``, ``from
torch.optim import Adam as Base``, an alias assigned to a name (``o = torch.optim``),
``getattr(torch, "optim")``. ``from torch... import *`` anywhere in the learner's cells
counts, and so does a call of ``exec``, ``eval``, ``compile`` or ``__import__`` in code that
runs when the cells run (a top-level statement, or a definition one of them reaches).

Limits: the guard reads code; it does not run it. Writing torch's update out by hand in
tensor operations is doing the exercise. Code the guard does not reach from the graded
name and that changes the learner's object by means it does not model (say, an object
from another module that holds a reference to it) would pass the guard; the checks still
compare what the object does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from .runner import CheckResult, Report

#: The parts that exist to make the learner write an update, each with the torch.optim
#: names its code may use besides ``Optimizer``.
GUARDED: dict[str, frozenset[str]] = {
    part: frozenset()
    for part in (
        "gd-step", "gd-optimizer", "momentum-step", "momentum-optimizer", "adagrad-step", "rmsprop-step",
        "rmsprop-optimizer", "adam-step", "adam-optimizer", "adamw-optimizer", "adam-scalar-loop",
        "inplace-adam-step", "fast-adam-optimizer", "master-adam-step", "radam-step", "lion-optimizer",
        "newton-schulz", "muon-optimizer",
    )
}
ALWAYS_ALLOWED_IN_OPTIM = frozenset({"Optimizer", "optimizer"})
#: Attributes of torch (a trailing _ means "starting with") that lead to an optimizer's
#: kernels or load an object by its name.
FORBIDDEN_IN_TORCH = ("_fused_", "ops", "_ops", "_C", "_VF", "load", "serialization", "package", "hub",
                      "library", "classes", "_classes")
#: Modules (and attributes of modules) that look objects up by a name computed at run time.
LOOKUPS = ("importlib", "pickle", "marshal", "gc", "ctypes", "runpy", "builtins", "inspect", "types", "copyreg",
           "shelve", "dill", "cloudpickle", "code", "codeop", "sys.modules", "sys._getframe", "sys.meta_path",
           "operator.attrgetter", "operator.methodcaller", "autograder")
EXECUTING = frozenset({"exec", "eval", "compile", "__import__"})
DYNAMIC_CALLS = frozenset({"globals", "vars", "locals", "open", "breakpoint"})
NAMED_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
#: Dunder attributes an optimizer legitimately touches; any other may walk to torch's.
DUNDERS = frozenset({"__init__", "__setstate__", "__getstate__", "__class__", "__name__", "__qualname__",
                     "__repr__", "__len__", "__iter__", "__call__", "__doc__", "__module__"})
MESSAGE = (
    "this part asks you to write the update yourself, with tensor operations, but {name} {why}. "
    "No points are given for torch's own optimizer: write the update in your own code (a subclass "
    "of torch.optim.Optimizer may use only what the base class provides)."
)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _parse(source: str) -> ast.Module | None:
    """A cell as Python: IPython's syntax (magics, ``!commands``) transformed as a kernel
    would; None if it does not parse (then it defined nothing)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # IPython missing, or a cell it cannot transform: parse it as it is
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _parameters(function) -> set[str]:
    args = function.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    return names | {a.arg for a in (args.vararg, args.kwarg) if a is not None}


def _outer_parts(node) -> list:
    """What a function or class evaluates where it is defined: decorators, defaults, bases."""
    if isinstance(node, ast.ClassDef):
        return node.bases + [k.value for k in node.keywords] + node.decorator_list
    return (list(getattr(node, "decorator_list", [])) + node.args.defaults
            + [d for d in node.args.kw_defaults if d is not None])


def _body(node) -> list:
    return node.body if isinstance(node.body, list) else [node.body]


def _declared_global(body) -> set[str]:
    return {name for statement in body for node in ast.walk(statement) if isinstance(node, ast.Global)
            for name in node.names}


def _bound_names(statement: ast.stmt) -> set[str]:
    """The module-level names a top-level statement binds, or changes in place (``X.a =``,
    ``X[k] =``, ``setattr(X, ...)``, ``global X`` then ``X = ...``, anywhere in it)."""
    names = set()

    def visit(node, module_level: bool, declared: frozenset):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and module_level:
            names.add(node.name)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and module_level:
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and (
                module_level or node.id in declared):
            names.add(node.id)
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            base = node.value
            while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
                base = base.func if isinstance(base, ast.Call) else base.value
            if isinstance(base, ast.Name):
                names.add(base.id)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                and node.args and isinstance(node.args[0], ast.Name)):
            names.add(node.args[0].id)
        if isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            for part in _outer_parts(node):
                visit(part, module_level, declared)
            body = _body(node)
            inner = frozenset(declared | _declared_global(body))
            for child in body:
                visit(child, False, inner)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, module_level, declared)

    visit(statement, True, frozenset())
    return names


def _free_names(statement: ast.stmt) -> set[str]:
    """The names a statement reads that are not local to the function reading them: the
    module-level names it may use."""
    free = set()

    def visit(node, local: frozenset):
        if isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            for part in _outer_parts(node):
                visit(part, local)
            body = _body(node)
            inner = local
            if not isinstance(node, ast.ClassDef):
                walked = [n for b in body for n in ast.walk(b)]
                own = (_parameters(node)
                       | {n.id for n in walked if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                       | {n.name for n in walked if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef))}
                       | {(a.asname or a.name).split(".")[0] for n in walked
                          if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names})
                inner = local | (own - _declared_global(body))
            for child in body:
                visit(child, frozenset(inner))
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
            free.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    visit(statement, frozenset())
    return free


def _aliases(trees: Iterable[ast.AST]) -> dict[str, str]:
    """Each name an import binds, anywhere, with the dotted path it names."""
    aliases = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    root = alias.name.split(".")[0]
                    aliases[alias.asname or root] = alias.name if alias.asname else root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Resolver:
    """Dotted paths of expressions: ``o.Adam`` is ``torch.optim.Adam`` after
    ``import torch.optim as o``; ``getattr(torch, "optim")`` is ``torch.optim``."""

    def __init__(self, trees: list[ast.AST]):
        self.aliases = _aliases(trees)
        self.imported = set(self.aliases)
        self.free: set[str] | None = None  # names a statement reads from the module (None: all)
        # Names assigned a resolvable path (``o = torch.optim``) are aliases too, until
        # nothing new is learnt.
        assigns = [node for tree in trees for node in ast.walk(tree)
                   if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None]
        changed = True
        while changed:
            changed = False
            for node in assigns:
                path = self.path(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if path and isinstance(target, ast.Name) and self.aliases.get(target.id) != path:
                        self.aliases[target.id] = path
                        changed = True

    def path(self, node) -> str | None:
        if isinstance(node, ast.Name):
            # A local variable is not the module-level alias of the same name; imports are
            # taken to name what they import wherever they are.
            readable = self.free is None or node.id in self.free or node.id in self.imported
            return self.aliases.get(node.id) if readable and isinstance(node.ctx, ast.Load) else None
        if isinstance(node, ast.Attribute):
            base = self.path(node.value)
            return f"{base}.{node.attr}" if base else None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) >= 2 and _literal(node.args[1]) is not None):
            base = self.path(node.args[0])
            return f"{base}.{_literal(node.args[1])}" if base else None
        return None


def forbidden_path(path: str, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether the dotted ``path`` names one of torch's optimizer implementations (or a way
    to load one by name) that a part with ``allowed`` torch.optim names may not use."""
    parts = path.split(".")
    if parts[0] != "torch" or len(parts) == 1:
        return False
    if parts[1] == "optim":
        return len(parts) == 2 or parts[2] not in ALWAYS_ALLOWED_IN_OPTIM | allowed
    return any(parts[1] == name or (name.endswith("_") and parts[1].startswith(name)) for name in FORBIDDEN_IN_TORCH)


def _why(statements: list[ast.stmt], resolver: _Resolver, allowed: frozenset[str], defined: set[str]) -> str | None:
    """Why the reached ``statements`` borrow (a phrase), or None."""
    for statement in statements:
        resolver.free = _free_names(statement)
        nodes = list(ast.walk(statement))
        # Only whole chains count: torch.optim inside torch.optim.Optimizer is not a use of it.
        inner = {id(node.value) for node in nodes if isinstance(node, ast.Attribute)}
        inner |= {id(node.args[0]) for node in nodes if isinstance(node, ast.Call) and resolver.path(node)}
        called = {id(node.func) for node in nodes if isinstance(node, ast.Call)}
        for node in nodes:
            resolvable = isinstance(node, (ast.Attribute, ast.Name, ast.Call)) and id(node) not in inner
            path = resolver.path(node) if resolvable else None
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # What an import brings in is used by being imported (the graded name itself, say).
                prefix = f"{node.module}." if isinstance(node, ast.ImportFrom) and node.module else ""
                path = next((prefix + alias.name for alias in node.names if prefix + alias.name != "torch.optim"
                             and forbidden_path(prefix + alias.name, allowed)), None)
            if path and forbidden_path(path, allowed):
                return "uses " + (path if path != "torch.optim" else "torch.optim as a whole")
            lookup = next((name for name in LOOKUPS if path and (path + ".").startswith(name + ".")), None)
            if lookup:
                return f"uses {lookup}, which can fetch torch's optimizers by a name the grader cannot read"
            if isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__") \
                    and node.attr not in DUNDERS:
                return f"reads {node.attr}, which can reach torch's optimizers without naming them"
            if isinstance(node, ast.Name) and node.id in NAMED_ATTRIBUTE_CALLS | DYNAMIC_CALLS | EXECUTING \
                    and node.id not in defined and id(node) not in called:
                return f"passes {node.id} around, which the grader cannot follow"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in defined:
                if node.func.id in DYNAMIC_CALLS | EXECUTING:
                    return f"calls {node.func.id}(), whose effect the grader cannot read"
                if node.func.id in NAMED_ATTRIBUTE_CALLS and (len(node.args) < 2 or _literal(node.args[1]) is None):
                    return f"calls {node.func.id}() with a computed name, which the grader cannot read"
    return None


def _reach(start: list[ast.stmt], names: list[str], statements: list[ast.stmt], binds: list[set[str]],
           defined: set[str]) -> list[ast.stmt]:
    """``start`` and the statements that bind ``names`` or any module-level name (of
    ``defined``) that a reached statement reads, until nothing new is reached."""
    reached = list(start)
    wanted, seen = [*names, *(n for s in start for n in _free_names(s) & defined)], set()
    while wanted:
        current = wanted.pop()
        if current in seen:
            continue
        seen.add(current)
        for statement, bound in zip(statements, binds):
            if current in bound and statement not in reached:
                reached.append(statement)
                wanted.extend(_free_names(statement) & defined)
    return reached


def borrowing(part: str, name: str, cells: Iterable[str]) -> str | None:
    """The message for the learner if ``name``, as the learner's code ``cells`` (their
    sources, in order) define it, borrows torch's optimizer implementation, for a part in
    :data:`GUARDED`; None otherwise, and always None for other parts."""
    if part not in GUARDED:
        return None
    trees = [tree for tree in map(_parse, cells) if tree is not None]
    statements = [statement for tree in trees for statement in tree.body]
    binds = [_bound_names(statement) for statement in statements]
    resolver = _Resolver(trees)
    defined = set().union(*binds) - set(resolver.aliases) if binds else set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names) \
                    and (node.module or "").split(".")[0] == "torch":
                return MESSAGE.format(name=name, why=f"is defined next to `from {node.module} import *`, "
                                                     "which may bind torch's optimizers to any name")
    # What runs when the cells run (every top-level statement but a definition) may not
    # execute code the guard cannot read, wherever it is reached from.
    running = [s for s in statements if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import,
                                                           ast.ImportFrom))]
    for statement in _reach(running, [], statements, binds, defined):
        call = next((node.func.id for node in ast.walk(statement) if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Name) and node.func.id in EXECUTING - defined), None)
        if call:
            return MESSAGE.format(name=name, why=f"is defined next to code that calls {call}(), whose effect "
                                                 "the grader cannot read")
    # Every statement that changes torch, and the definitions of the graded name and of
    # every module-level name the reached statements read, until nothing new is reached.
    changes_torch = [s for s, names in zip(statements, binds) if "torch" in names
                     and not isinstance(s, (ast.Import, ast.ImportFrom))]
    reached = _reach(changes_torch, [name], statements, binds, defined)
    why = _why(reached, resolver, GUARDED[part], defined)
    return MESSAGE.format(name=name, why=why) if why else None


def report(part: str, points: float, message: str) -> Report:
    """The report of a part that borrowed: no points, and why."""
    check = CheckResult("check_writes_its_own_update", "Writes the update itself (torch's optimizers read from "
                        "the code)", 1.0, "failed", message)
    return Report(part=part, points=float(points), earned=0.0, checks=[check])
