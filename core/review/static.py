"""Static review: walk the code's AST and report risky constructs with readable reasons and lines.

This is a tripwire, not a wall: it cannot see through obfuscation, and it does not need to, because the
sandbox is what actually contains the code. Its findings inform the LLM reviewer and, in strict mode,
refuse code outright.
"""

from __future__ import annotations

import ast
from pathlib import PurePosixPath

from core.review.rules import (
    BENIGN_ATTRS,
    DUNDER_ATTRS,
    HOME_CALLS,
    MODULE_RULES,
    NAME_PREFIX_RULES,
    NAME_RULES,
    OPENERS,
    PATH_CONSTRUCTORS,
    PATH_DERIVERS,
    PATH_WRITE_METHODS,
    PATH_WRITERS,
    RULE_TEXT,
)
from core.types import Finding

MAX_FINDINGS = 20  # enough to explain a refusal; a flood helps nobody


def analyse(code: str) -> tuple[Finding, ...]:
    """Return the risky constructs in `code`, sorted by line (a SyntaxError is one finding)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return (Finding("syntax", exc.lineno or 1, f"is not valid Python: {exc.msg}"),)
    except (ValueError, RecursionError) as exc:  # null bytes, absurd nesting
        return (Finding("syntax", 1, f"cannot be parsed: {exc}"),)
    visitor = _Visitor()
    try:
        visitor.visit(tree)
    except RecursionError:
        visitor.add("eval", 1, "code nested too deeply to analyse")
    ordered = sorted(visitor.findings, key=lambda f: (f.line, f.rule, f.message))
    return tuple(ordered[:MAX_FINDINGS])


def _module_rule(module: str) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if (rule := MODULE_RULES.get(".".join(parts[:i]))) is not None:
            return rule
    return None


def _name_rule(name: str) -> str | None:
    if (rule := NAME_RULES.get(name)) is not None:
        return rule
    return next((rule for prefix, rule in NAME_PREFIX_RULES if name.startswith(prefix)), None)


def _str_const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_dunder(s: str) -> bool:
    return len(s) > 4 and s.startswith("__") and s.endswith("__")


def _outside(path: str) -> bool:
    """True for a path that leaves the working directory: absolute, home-relative or climbing out."""
    return path.startswith(("/", "~")) or ".." in PurePosixPath(path).parts


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.findings: set[Finding] = set()
        self.aliases: dict[str, str] = {}  # local name -> dotted name it was imported as

    def add(self, rule: str, line: int, detail: str) -> None:
        self.findings.add(Finding(rule, line, f"{RULE_TEXT[rule]} ({detail})"))

    def qualname(self, node: ast.AST) -> str | None:
        """Resolve `a.b.c` through import aliases to a dotted name, or None if not a plain name."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    # ---- imports --------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[(alias.asname or alias.name).split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            if rule := _module_rule(alias.name):
                self.add(rule, node.lineno, f"imports {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if rule := _module_rule(module):
            self.add(rule, node.lineno, f"imports from {module}")
        for alias in node.names:
            full = f"{module}.{alias.name}" if module else alias.name
            self.aliases[alias.asname or alias.name] = full
            if rule := _name_rule(full) or _module_rule(full):
                self.add(rule, node.lineno, f"imports {full}")

    # ---- names and attributes -------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        name = self.aliases.get(node.id, node.id)
        if rule := _name_rule(name):
            self.add(rule, node.lineno, f"uses {name}")
        if node.id == "__builtins__":
            self.add("dunder", node.lineno, "uses __builtins__")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DUNDER_ATTRS and node.attr not in BENIGN_ATTRS:
            self.add("dunder", node.lineno, f"accesses {node.attr}")
        name = self.qualname(node)
        if name and (rule := _name_rule(name)):
            self.add(rule, node.lineno, f"uses {name}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            text = node.value
            if text in DUNDER_ATTRS and text not in BENIGN_ATTRS:
                self.add("dunder", node.lineno, f"names {text} in a string")
            if "/proc/" in text and "environ" in text:
                self.add("env", node.lineno, "reads another process's environment")

    # ---- calls ----------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        if name in {"getattr", "setattr", "delattr"} and len(node.args) >= 2:
            attr = _str_const(node.args[1])
            if attr and _is_dunder(attr):
                self.add("dunder", node.lineno, f"{name}(..., {attr!r})")
                for child in (node.args[0], *node.args[2:], *node.keywords):
                    self.visit(child)  # not args[1]: that string is reported already
                return
        if name in OPENERS:
            self._check_open(node, name)
        elif name in PATH_WRITERS:
            self._check_path_arg(node, name, PATH_WRITERS[name])
        elif isinstance(node.func, ast.Attribute) and node.func.attr in PATH_WRITE_METHODS:
            if self._path_outside(node.func.value):
                self.add(
                    "fs-write", node.lineno, f"Path.{node.func.attr} on a path outside the working directory"
                )
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "open"
            and self._path_outside(node.func.value)
            and self._writes(node, 0)
        ):
            self.add("fs-write", node.lineno, "opens a path outside the working directory for writing")
        self.generic_visit(node)

    def _check_open(self, node: ast.Call, name: str) -> None:
        target = node.args[0] if node.args else _kwarg(node, "file")
        if target is not None and self._path_outside(target) and self._writes(node, 1):
            self.add("fs-write", node.lineno, f"{name}() writes to {_describe(target)}")

    def _check_path_arg(self, node: ast.Call, name: str, index: int) -> None:
        target = node.args[index] if len(node.args) > index else _kwarg(node, "dst" if index else "path")
        if target is not None and self._path_outside(target):
            self.add("fs-write", node.lineno, f"{name}() on {_describe(target)}")

    def _writes(self, node: ast.Call, mode_index: int) -> bool:
        mode_node = node.args[mode_index] if len(node.args) > mode_index else _kwarg(node, "mode")
        mode = _str_const(mode_node)
        if mode_node is not None and mode is None:
            return True  # a computed mode could be anything
        return mode is not None and any(c in mode for c in "wax+")

    def _path_outside(self, node: ast.AST) -> bool:
        """True when the expression is a path known (from literals) to leave the working directory."""
        if (text := _str_const(node)) is not None:
            return _outside(text)
        if isinstance(node, ast.JoinedStr) and node.values:
            return self._path_outside(node.values[0])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self._path_outside(node.left) or (
                (text := _str_const(node.right)) is not None and ".." in PurePosixPath(text).parts
            )
        if isinstance(node, ast.Call):
            name = self.qualname(node.func) or ""
            if name in HOME_CALLS:
                return True
            if name in PATH_CONSTRUCTORS:
                return any(self._path_outside(a) for a in node.args[:1])
            if isinstance(node.func, ast.Attribute) and node.func.attr in PATH_DERIVERS:
                return self._path_outside(node.func.value)
        return False


def _kwarg(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _describe(node: ast.AST) -> str:
    text = _str_const(node)
    if text is not None:
        return repr(text[:60])
    try:
        return ast.unparse(node)[:60]
    except Exception:
        return "a path outside the working directory"
