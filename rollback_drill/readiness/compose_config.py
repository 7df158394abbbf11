"""``docker compose config`` of a release's own files (without the run's override): it resolves,
no variable is unset or empty, every build context, Dockerfile and bind-mounted file exists,
every image without a build section is here (or its stand-in in the target's ``images``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from rollback_drill.compose import Compose
from rollback_drill.readiness.findings import Finding, Review
from rollback_drill.readiness.release import Release, image_here, item_line, locate, services_of

_UNSET = re.compile(r'The \\?"([A-Za-z_][A-Za-z0-9_]*)\\?" variable is not set')
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def check_compose_config(rel: Release, review: Review) -> None:
    t, ws = rel.target, rel.ws
    compose = Compose(ws.project, ws.root, list(t.compose_files), ws.env_file)
    res = compose.run("config", "--format", "json", timeout=60)
    first = rel.shown(ws.root / t.compose_files[0])
    if not res.ok:
        said = res.tail(1).replace(str(ws.root) + "/", "")
        line = re.search(r"yaml: line (\d+)", said)
        review.add(
            Finding(
                "error",
                "compose-config",
                first,
                int(line.group(1)) if line else None,
                f"docker compose config fails: {said}",
                "every phase (each runs docker-compose on these files)",
                "make `docker compose config` pass with the target's env file",
                (rel.name,),
            )
        )
        return
    rel.config = json.loads(res.stdout)
    unset = sorted(set(_UNSET.findall(res.stderr)))
    env = _env_values(ws.env_file)
    for name in t.compose_files:
        path = ws.root / name
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            if text.lstrip().startswith("#"):
                continue
            for m in _VAR.finditer(text.replace("$$", "")):
                var, mod = m.group(1) or m.group(3), m.group(2) or ""
                if mod.startswith((":-", ":?", ":+")):
                    continue  # a default (or an error of its own) for unset and empty
                if mod.startswith(("-", "?", "+")) and env.get(var) != "":
                    continue  # a default for unset only
                if var in unset or var not in env:
                    what, state = "not set", "unset"
                elif env[var] == "":
                    what, state = "empty", "empty"
                else:
                    continue
                review.add(
                    Finding(
                        "error",
                        f"{state}-variable",
                        rel.shown(path),
                        lineno,
                        f"${{{var}}} is {what}: Compose uses an empty string",
                        "Phase 3 step 3 and Phase 5 step 4 (build and up read these files)",
                        f"define {var} in the target's env (env.values, env.generated or "
                        "env.from_environment) or give it a default (${" + var + ":-value})",
                        (rel.name,),
                    )
                )
    for name in unset:  # a reference the scan above did not place (an included file...)
        if not any(f.message.startswith(f"${{{name}}}") for f in review.findings):
            review.add(
                Finding(
                    "error",
                    "unset-variable",
                    first,
                    None,
                    f"${{{name}}} is not set: Compose uses an empty string",
                    "Phase 3 step 3 and Phase 5 step 4 (build and up read these files)",
                    f"define {name} in the target's env",
                    (rel.name,),
                )
            )


def _env_values(env_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


def check_files_and_images(rel: Release, review: Review, client: Any) -> None:
    t = rel.target
    for name, svc in services_of(rel).items():
        build = svc.get("build")
        if isinstance(build, dict):
            context = Path(str(build.get("context", ".")))
            where = locate(rel, "services", name, "build")
            if not context.is_dir():
                review.add(
                    Finding(
                        "error",
                        "build-context",
                        *where,
                        f"service {name}: build context {rel.shown(context)} does not exist",
                        "Phase 3 step 3 (docker-compose build) and Phase 5 step 4",
                        "commit the build context or fix the path in build.context",
                        (rel.name,),
                    )
                )
            else:
                dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
                if not dockerfile.is_file():
                    review.add(
                        Finding(
                            "error",
                            "dockerfile",
                            *where,
                            f"service {name}: {rel.shown(dockerfile)} does not exist",
                            "Phase 3 step 3 (docker-compose build) and Phase 5 step 4",
                            "commit the Dockerfile or fix build.dockerfile",
                            (rel.name,),
                        )
                    )
        for i, volume in enumerate(svc.get("volumes") or []):
            if volume.get("type") != "bind":
                continue
            source = Path(str(volume.get("source", "")))
            if not source.exists():
                review.add(
                    Finding(
                        "error",
                        "bind-mount",
                        *item_line(rel, ("services", name, "volumes"), i),
                        f"service {name}: bind-mounted {rel.shown(source)} does not exist "
                        "(Compose would create an empty directory in its place)",
                        "Phase 3 step 3 and Phase 5 step 4 (up recreates the container)",
                        "commit the file, or fix the volume's source path",
                        (rel.name,),
                    )
                )
        image = svc.get("image")
        if client is None or not image or isinstance(build, dict):
            continue
        if not (image_here(client, str(image)) or image_here(client, t.images.get(image, ""))):
            review.add(
                Finding(
                    "error",
                    "image",
                    *locate(rel, "services", name, "image"),
                    f"service {name}: image {image} is not here and has no build section",
                    "Phase 5 step 4 (up) and any recreate of the container",
                    f"pull or build {image} here, or map it to a local image in the target's "
                    "'images' field",
                    (rel.name,),
                )
            )
