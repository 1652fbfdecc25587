"""Print constraints.txt: the exact versions installed here of codebot's dependency closure (+ test extra)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        mark = (_key(req.name), frozenset(req.extras))
        if mark in seen:
            continue
        seen.add(mark)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue
        pins[_key(req.name)] = f"{dist.metadata['Name']}=={dist.version}"
        for raw in dist.requires or []:
            dep = Requirement(raw)
            extras = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in extras):
                todo.append(dep)
    print("# Versions CI installs with (PIP_CONSTRAINT in .ci/run): the set the suite last passed with.")
    print("# Regenerate after a deliberate upgrade: python .ci/constraints.py > constraints.txt")
    for key in sorted(pins):
        print(pins[key])


if __name__ == "__main__":
    main()
