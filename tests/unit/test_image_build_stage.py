"""The Dockerfile's build stage, replayed without Docker: its COPY and `uv sync` steps, in its order,
into a scratch /app, then the worker imported from another directory, as ECS may start it.

Before the fix the project was installed before workers/ was copied: the editable install then
only put /app/src on the path and `import workers` failed outside /app."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".bootstrap" / "bin" / "uv"


def build_stage_steps() -> list[tuple[str, list[str]]]:
    text = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    stage = text.split(" AS build", 1)[1].split(" AS runtime", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", stage)
    steps: list[tuple[str, list[str]]] = []
    for line in joined.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            steps.append(("copy", shlex.split(line)[1:]))
        elif line.startswith("RUN ") and "uv sync" in line:
            steps.append(("uv", shlex.split(line[line.index("uv sync") :])[2:]))
    return steps


def test_build_stage_installs_both_packages_before_the_runtime_copies(tmp_path: Path):
    if not UV.exists():
        pytest.skip("run `make install` first (it bootstraps uv)")
    app = tmp_path / "app"
    app.mkdir()
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(app / ".venv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }
    env.pop("VIRTUAL_ENV", None)
    steps = build_stage_steps()
    assert [kind for kind, _ in steps].count("uv") == 2
    for kind, args in steps:
        if kind == "copy":
            *sources, dest = args
            for source in sources:
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, app / dest, dirs_exist_ok=True)
                else:  # files into a directory (COPY a b ./)
                    shutil.copy2(REPO / source, app / dest / Path(source).name)
        else:
            done = subprocess.run(
                [UV, "sync", *args, "--python", sys.executable, "--quiet"],
                cwd=app,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-1000:]
    # The runtime stage copies the rest of the code next to the venv, at the same paths.
    for part in ("workers", "src"):
        shutil.copytree(REPO / part, app / part, dirs_exist_ok=True)
    started_elsewhere = subprocess.run(
        [app / ".venv" / "bin" / "python", "-c", "import workers.settings, sweetdream.cli; print('ok')"],
        cwd="/",
        env={
            "PATH": os.environ["PATH"],
            "SWEETDREAM_ENV": "production",
            "SECRET_KEY": "k" * 40,
            "DATABASE_URL": "postgresql://u:p@127.0.0.1:9/db",
            "REDIS_URL": "redis://127.0.0.1:9/0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started_elsewhere.stdout.strip() == "ok", started_elsewhere.stderr[-1000:]
