"""The third-party packages a rule's script can import, found statically.

The walk starts at the script and follows what it names into the library: a module's top
level always runs when the module is imported; a function or class only when something
reached names it, and then its own imports (also those inside the function body) count. A
class counts whole (every method). Calls through an object (``oracle.label(...)``) are not
resolved, but the factory that built the object names its class, which brings the methods in.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "mlip_autopipe"
#: Top-level names that are neither third-party packages nor library modules.
LOCAL_NAMES = {PACKAGE, "common", "snakemake", "__future__"}

#: A library definition: (module, name); name None is the module's top level. Modules are
#: dotted paths inside the package (``fit``, ``oracles``, ``oracles.qe``).
Definition = tuple[str, str | None]


@dataclass
class Reach:
    """What running one piece of code touches: third-party packages and library definitions."""

    packages: set[str] = field(default_factory=set)
    definitions: set[Definition] = field(default_factory=set)


def third_party(module: str) -> str | None:
    """The distribution-level top name of a third-party import, None for stdlib and our own."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in LOCAL_NAMES:
        return None
    return top


def _imports(
    node: ast.AST, reach: Reach, aliases: dict[str, Definition], modules: frozenset[str] = frozenset()
) -> None:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Import):
            for alias in inner.names:
                if package := third_party(alias.name):
                    reach.packages.add(package)
                elif alias.name.startswith(f"{PACKAGE}."):
                    module = alias.name.split(".", 1)[1]
                    reach.definitions.add((module, None))
                    if alias.asname:
                        aliases[alias.asname] = (module, None)
        elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
            if package := third_party(inner.module):
                reach.packages.add(package)
            elif inner.module == PACKAGE:  # from mlip_autopipe import fit
                for alias in inner.names:
                    aliases[alias.asname or alias.name] = (alias.name, None)
                    reach.definitions.add((alias.name, None))
            elif inner.module.startswith(f"{PACKAGE}."):  # from mlip_autopipe.fit import evaluate
                module = inner.module.split(".", 1)[1]
                reach.definitions.add((module, None))
                for alias in inner.names:
                    if f"{module}.{alias.name}" in modules:  # from mlip_autopipe.oracles import qe
                        aliases[alias.asname or alias.name] = (f"{module}.{alias.name}", None)
                        reach.definitions.add((f"{module}.{alias.name}", None))
                    else:
                        aliases[alias.asname or alias.name] = (module, alias.name)


def _names(
    node: ast.AST, module: str, reach: Reach, aliases: dict[str, Definition], defined: set[str]
) -> None:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            if inner.id in defined:
                reach.definitions.add((module, inner.id))
            elif inner.id in aliases:
                reach.definitions.add(aliases[inner.id])
        elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            target = aliases.get(inner.value.id)
            if target is not None and target[1] is None:  # fit.evaluate
                reach.definitions.add((target[0], inner.attr))


def code_reach(
    module: str,
    node: ast.AST,
    aliases: dict[str, Definition],
    defined: set[str],
    modules: frozenset[str] = frozenset(),
) -> Reach:
    """The reach of one piece of code; ``aliases`` gains the names its imports bind."""
    reach = Reach()
    _imports(node, reach, aliases, modules)
    _names(node, module, reach, aliases, defined)
    return reach


class Library:
    """Every top level, function and class of the library, with its reach."""

    def __init__(self, folder: Path) -> None:
        self.reaches: dict[Definition, Reach] = {}
        #: names a module imports at its top level (a package's re-exports): where they live
        self.exports: dict[Definition, Definition] = {}
        paths = {}
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                paths[".".join(parts)] = path
        self.modules = frozenset(paths)
        for module, path in paths.items():
            self._add(module, ast.parse(path.read_text()))

    def _add(self, module: str, tree: ast.Module) -> None:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        definitions = {node.name: node for node in tree.body if isinstance(node, kinds)}
        aliases: dict[str, Definition] = {}
        top = Reach()
        for node in tree.body:
            if not isinstance(node, kinds):
                part = code_reach(module, node, aliases, set(definitions), self.modules)
                top.packages |= part.packages
                top.definitions |= part.definitions
        self.reaches[(module, None)] = top
        for name, target in aliases.items():
            if name not in definitions:
                self.exports[(module, name)] = target
        for name, node in definitions.items():
            reach = code_reach(module, node, dict(aliases), set(definitions), self.modules)
            reach.definitions.add((module, None))
            self.reaches[(module, name)] = reach

    def packages(self, start: Reach) -> set[str]:
        """Every third-party package reachable from ``start``."""
        found = set(start.packages)
        todo, seen = list(start.definitions), set()
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            reach = self.reaches.get(key)
            if reach is not None:
                found |= reach.packages
                todo.extend(reach.definitions)
            elif key in self.exports:  # a name the module imports: follow it to its home
                todo.append(self.exports[key])
            # otherwise a constant, which runs no code of its own
        return found


def script_packages(library: Library, script: Path) -> set[str]:
    """The third-party packages a rule's ``script:`` can import."""
    tree = ast.parse(script.read_text())
    return library.packages(code_reach("__script__", tree, {}, set(), library.modules))
