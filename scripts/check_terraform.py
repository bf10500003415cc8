"""Check that every reference in deploy/terraform resolves, without terraform or its providers.

`terraform validate` needs the providers, which can't be fetched everywhere `make lint` runs. This
reads the HCL with python-hcl2 and checks, in each environment and each module:

- every `var.X` is a declared variable, every `local.X` a declared local;
- every `data.T.N` and every resource reference `T.N` is declared in the same directory;
- every `module.M.O` names a module block whose source declares output `O`;
- every module block's source exists, each argument it passes is a variable there, and every
  variable there without a default is passed.

    python scripts/check_terraform.py [deploy/terraform]     # exit 1 and one line per problem
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "deploy" / "terraform"
# Providers whose resources these files use: a `word_word.name` whose first word is one of these
# is a resource reference; anything else (each.value, count.index, path.module) is not.
PROVIDER_PREFIXES = ("aws_", "random_", "archive_")
MODULE_META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}

INTERPOLATION = re.compile(r"\$\{(.*)\}", re.S)
STRING_LITERAL = re.compile(r'"(?:[^"\\$]|\\.|\$(?!\{))*"')
DATA_REF = re.compile(r"(?<![\w.])data\.(\w+)\.(\w+)")
VAR_REF = re.compile(r"(?<![\w.])var\.(\w+)")
LOCAL_REF = re.compile(r"(?<![\w.])local\.(\w+)")
MODULE_REF = re.compile(r"(?<![\w.])module\.(\w+)(?:\.(\w+))?")
RESOURCE_REF = re.compile(r"(?<![\w.])((?:" + "|".join(PROVIDER_PREFIXES) + r")\w+)\.(\w+)")


def unquote(label: str) -> str:
    return label.strip('"')


@dataclass
class Directory:
    """What one Terraform directory (an environment or a module) declares and references."""

    path: Path
    variables: dict[str, bool] = field(default_factory=dict)  # name -> has a default
    locals: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    data: set[tuple[str, str]] = field(default_factory=set)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    expressions: list[tuple[str, str]] = field(default_factory=list)  # (file name, expression text)


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "__comments__":
                yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)


def expression_text(leaf: str) -> str:
    """The code in a leaf: what is inside ${...}, with string literals blanked out."""
    code = " ".join(INTERPOLATION.findall(leaf))
    previous = None
    while previous != code:  # literals may hold interpolations that hold literals
        previous = code
        code = STRING_LITERAL.sub('""', code)
    return code


@functools.cache
def load(path: Path) -> Directory:
    directory = Directory(path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("variable", []):
            for name, body in block.items():
                directory.variables[unquote(name)] = "default" in body
        for block in parsed.get("locals", []):
            directory.locals |= {key for key in block if not key.startswith("__")}
        for block in parsed.get("output", []):
            directory.outputs |= {unquote(name) for name in block}
        for kind, target in (("resource", directory.resources), ("data", directory.data)):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    target |= {(unquote(rtype), unquote(n)) for n in named}
        for block in parsed.get("module", []):
            for name, body in block.items():
                directory.modules[unquote(name)] = body
        directory.expressions += [(tf.name, expression_text(leaf)) for leaf in leaves(parsed)]
    return directory


def problems_in(directory: Directory, root: Path) -> list[str]:
    where = directory.path.relative_to(root)
    found: list[str] = []
    for file_name, code in directory.expressions:
        at = f"{where}/{file_name}"
        for name in VAR_REF.findall(code):
            if name not in directory.variables:
                found.append(f"{at}: var.{name} is not a declared variable")
        for name in LOCAL_REF.findall(code):
            if name not in directory.locals:
                found.append(f"{at}: local.{name} is not a declared local")
        for rtype, name in DATA_REF.findall(code):
            if (rtype, name) not in directory.data:
                found.append(f"{at}: data.{rtype}.{name} is not declared here")
        for module, output in MODULE_REF.findall(code):
            if module not in directory.modules:
                found.append(f"{at}: module.{module} is not a module block here")
            elif output and output not in module_source(directory, module).outputs:
                found.append(f"{at}: module.{module} has no output {output!r}")
        for rtype, name in RESOURCE_REF.findall(DATA_REF.sub("", code)):
            if (rtype, name) not in directory.resources:
                found.append(f"{at}: {rtype}.{name} is not a resource declared here")
    for module, body in directory.modules.items():
        found += module_call_problems(directory, module, body, where)
    return found


def module_source(directory: Directory, module: str) -> Directory:
    source = unquote(directory.modules[module]["source"])
    return load((directory.path / source).resolve())


def module_call_problems(directory: Directory, module: str, body: dict[str, Any], where: Path) -> list[str]:
    source = directory.path / unquote(body["source"])
    if not source.is_dir() or not list(source.glob("*.tf")):
        return [f"{where}: module {module!r} source {unquote(body['source'])} has no .tf files"]
    target = module_source(directory, module)
    passed = {key for key in body if not key.startswith("__")} - MODULE_META_ARGUMENTS
    found = [
        f"{where}: module {module!r} passes {arg!r}, not a variable of its source"
        for arg in sorted(passed - set(target.variables))
    ]
    required = {name for name, has_default in target.variables.items() if not has_default}
    found += [f"{where}: module {module!r} does not pass required {arg!r}" for arg in sorted(required - passed)]
    return found


def check(root: Path) -> list[str]:
    directories = sorted({tf.parent for tf in root.rglob("*.tf") if ".terraform" not in tf.parts})
    found: list[str] = []
    for path in directories:
        found += problems_in(load(path), root)
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else DEFAULT_ROOT
    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(sorted({tf.parent for tf in root.rglob("*.tf")}))
    print(f"terraform references: {count} directories, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
