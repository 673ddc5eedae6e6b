"""The Dockerfile read with Docker's own parser, and its build stages replayed without Docker.

`replay` does what `docker build --target <target>` does for the environment the target ships: it copies into an
empty folder exactly what the build stages' COPY lines name (minus what .dockerignore leaves out), and runs their
`uv` commands there, offline (uv's cache on the machine has every wheel). Other RUN commands (installing uv, adding
a user) are not run: the test's uv stands in for the image's.
"""

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import dockerfile

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case: FROM, COPY, RUN, ...
    flags: tuple[str, ...]
    value: tuple[str, ...]
    line: int

    def flag(self, name: str) -> str | None:
        prefix = f"--{name}="
        return next((flag.removeprefix(prefix) for flag in self.flags if flag.startswith(prefix)), None)


@dataclass
class Stage:
    name: str  # the AS name, or its index when it has none
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.cmd == cmd]


def expand(text: str, variables: dict[str, str]) -> str:
    return VARIABLE.sub(lambda match: variables.get(match.group(1) or match.group(2), ""), text)


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages in order, with ARG defaults (global and the stage's own) expanded in FROM."""
    parsed: tuple[Any, ...] = dockerfile.parse_file(str(path))
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for command in parsed:
        instruction = Instruction(command.cmd.upper(), tuple(command.flags), tuple(command.value), command.start_line)
        if instruction.cmd == "FROM":
            words = instruction.value
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(name, expand(words[0], global_args)))
        elif not found:
            if instruction.cmd == "ARG":
                key, _, default = instruction.value[0].partition("=")
                global_args[key] = default
        else:
            found[-1].instructions.append(instruction)
    return found


def lineage(name: str, path: Path = DOCKERFILE) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    by_name = {found.name: found for found in stages(path)}
    assert name in by_name, f"the Dockerfile has no stage {name!r} (it has {sorted(by_name)})"
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def environment_source(target: str, path: Path = DOCKERFILE) -> tuple[str, str]:
    """Which stage made the environment the target ships, and where: the target's `COPY --from`, or itself."""
    copies = [i for s in lineage(target, path) for i in s.all("COPY") if i.flag("from")]
    if not copies:
        return target, ""
    assert len(copies) == 1, f"{target} copies more than one thing from other stages: {copies}"
    [copy] = copies
    source, destination = copy.value
    assert source == destination, f"the environment must keep its path (its scripts name it): {copy}"
    return str(copy.flag("from")), source


class DockerIgnore:
    def __init__(self, root: Path) -> None:
        path = root / ".dockerignore"
        lines = path.read_text().splitlines() if path.exists() else []
        self.patterns = [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]
        assert not any(pattern.startswith("!") for pattern in self.patterns), "exceptions in .dockerignore"

    def ignored(self, relative: PurePosixPath) -> bool:
        text = str(relative)
        for pattern in self.patterns:
            if pattern.startswith("**/"):
                if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in relative.parts):
                    return True
            elif fnmatch.fnmatchcase(text, pattern) or any(
                fnmatch.fnmatchcase(str(parent), pattern) for parent in relative.parents
            ):
                return True
        return False


@dataclass
class Replay:
    folder: Path  # stands for the image's / : /app is folder/app
    env: dict[str, str] = field(default_factory=dict)  # the stages' ENV, paths already moved into the folder
    workdir: str = "/"
    log: list[str] = field(default_factory=list)

    def moved(self, key: str, value: str) -> str:
        """An ENV value as the replay uses it: uv's paths in the image become paths in the folder."""
        if key.startswith("UV_") and key != "UV_CACHE_DIR" and value.startswith("/"):
            return str(self.inside(value))
        return value

    def inside(self, container_path: str) -> Path:
        absolute = PurePosixPath(self.workdir, container_path)
        return self.folder.joinpath(*absolute.parts[1:])


def replay(target: str, folder: Path, *, path: Path = DOCKERFILE, context: Path = ROOT) -> tuple[Replay, Path]:
    """Replays the build of `target`'s environment into `folder`; answers the replay and that environment's path."""
    source, venv = environment_source(target, path)
    ignore = DockerIgnore(context)
    state = Replay(folder)

    def copy_ignoring(directory: str, names: list[str]) -> set[str]:
        relative = PurePosixPath(Path(directory).relative_to(context))
        return {name for name in names if ignore.ignored(relative / name)}

    for built in lineage(source, path):
        arguments: dict[str, str] = {}
        for instruction in built.instructions:
            variables = {**arguments, **state.env}
            if instruction.cmd == "ARG":
                key, _, default = instruction.value[0].partition("=")
                arguments[key] = default
            elif instruction.cmd == "WORKDIR":
                state.workdir = str(PurePosixPath(state.workdir, expand(instruction.value[0], variables)))
            elif instruction.cmd == "ENV":
                pairs = instruction.value
                for key, value in zip(pairs[::2], pairs[1::2], strict=True):
                    state.env[key] = state.moved(key, expand(value, variables))
            elif instruction.cmd == "COPY":
                assert not instruction.flag("from"), f"a build stage copies from another stage: {instruction}"
                *sources, destination = (expand(word, variables) for word in instruction.value)
                target_path = state.inside(destination)
                for name in sources:
                    origin = context / name
                    assert origin.exists(), f"line {instruction.line}: COPY names {name}, which does not exist"
                    if origin.is_dir():
                        shutil.copytree(origin, target_path, ignore=copy_ignoring, dirs_exist_ok=True)
                    else:
                        into = target_path / origin.name if destination.endswith("/") else target_path
                        into.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(origin, into)
                state.log.append(f"COPY {' '.join(instruction.value)}")
            elif instruction.cmd == "RUN":
                for part in " ".join(instruction.value).split("&&"):
                    words = shlex.split(expand(part, variables))
                    if words and words[0] == "uv":
                        run_uv(words, state)
    if venv:
        return state, state.inside(venv)
    return state, Path(state.env.get("UV_PROJECT_ENVIRONMENT") or state.inside(".venv"))


def run_uv(words: list[str], state: Replay) -> None:
    """One of the Dockerfile's uv commands, offline, with the stages' ENV and nothing of the caller's uv settings."""
    caller = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env = {k: v for k, v in caller.items() if not k.startswith("UV_") or k == "UV_CACHE_DIR"}  # the machine's cache
    env.update({k: v for k, v in state.env.items() if k != "UV_CACHE_DIR"})
    env["UV_OFFLINE"] = "1"
    env.setdefault("UV_PROJECT_ENVIRONMENT", str(state.inside(".venv")))
    cwd = state.inside(".")
    uv = shutil.which("uv")
    command = [uv, *words[1:]] if uv else ["python3", "-m", "uv", *words[1:]]  # as the Makefile finds it
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    state.log.append(f"{shlex.join(words)} -> {done.returncode}")
    assert done.returncode == 0, f"`{shlex.join(words)}` failed in {cwd}:\n{done.stderr}"
