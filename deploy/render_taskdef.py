"""Render deploy/ecs/<web|worker>.json into a task definition for `aws ecs register-task-definition`.

The same templates feed Terraform (templatefile) and CI, so both register identical definitions.

    terraform -chdir=deploy/terraform/environments/prod output -json task_template_vars > vars.json
    python3 deploy/render_taskdef.py web vars.json "$IMAGE" > web-taskdef.json

Standard library only; fails (KeyError) if a placeholder has no value.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

ECS_DIR = Path(__file__).resolve().parent / "ecs"


def render(kind: str, variables: dict[str, dict[str, str]], image: str) -> dict:
    template = string.Template((ECS_DIR / f"{kind}.json").read_text())
    values = {**variables["common"], **variables[kind], "IMAGE": image}
    return json.loads(template.substitute(values))


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in {"web", "worker"}:
        print("usage: render_taskdef.py web|worker VARS_JSON IMAGE", file=sys.stderr)
        return 2
    kind, vars_path, image = argv
    variables = json.loads(Path(vars_path).read_text())
    json.dump(render(kind, variables, image), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
