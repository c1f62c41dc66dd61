"""The README is a tested tutorial: every ``bash`` block runs, top to bottom, in a fresh copy of
the repository's tracked files (no ``../shared`` beside it), with only the README's own set-up,
and the numbers the README quotes from those commands are compared with what they print.

How a block is run:

* in order, each as one ``bash -e -o pipefail`` script, in the same folder (so later blocks see
  the stores and files earlier ones made), with this interpreter's ``bin`` folder first on
  ``PATH`` (the README's ``python3 -m venv .venv && . .venv/bin/activate`` made that venv);
* the install steps are the test's own install (``python3 -m venv ...``,
  ``. .venv/bin/activate``, ``pip install ...`` links of an ``&&`` chain are dropped; CI runs
  them for real in ``.ci/run``);
* a block preceded by ``<!-- readme-test: skip: REASON -->`` is not run; the reason says why
  (the test command itself, needs Spark, a benchmark of minutes) and where it is run instead.

A number the README quotes from a block that runs is checked below (:data:`QUOTED`); numbers
from elsewhere say where they were measured in the README's own text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SKIP = re.compile(r"<!-- readme-test: skip: (?P<reason>[^>]+?) -->\s*$")
SETUP = re.compile(r"^(python3 -m venv \S+|\. \S+/bin/activate|pip install .*)$")


@dataclass(frozen=True)
class Block:
    line: int  # the README line of the opening fence
    code: str
    skip: str | None  # the reason it is not run


def readme_blocks(text: str) -> list[Block]:
    """Every ```bash block of the README, in order, with its skip directive."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            match = SKIP.match(before.strip())
            blocks.append(
                Block(i + 1, "\n".join(lines[i + 1 : end]), match["reason"] if match else None)
            )
            i = end
        i += 1
    return blocks


def runnable(code: str) -> str:
    """The block without the install steps the test environment already took."""
    out = []
    for line in code.splitlines():
        links = [part.strip() for part in line.split(" && ")]
        kept = [part for part in links if not SETUP.match(part)]
        if len(kept) < len(links) and not kept:
            continue
        out.append(" && ".join(kept) if len(kept) < len(links) else line)
    return "\n".join(out)


def _fresh_copy(folder: Path) -> Path:
    """The repository's tracked files (a fresh clone's content) in ``folder/clone``."""
    clone = folder / "clone"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked archive): the tree as it is
        ignore = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.duckdb*", "*.onnx")
        shutil.copytree(REPO, clone, ignore=ignore)
        return clone
    for name in filter(None, listed.stdout.split(b"\0")):
        source = REPO / name.decode()
        if source.is_file():
            target = clone / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return clone


@dataclass(frozen=True)
class Tutorial:
    folder: Path  # where the blocks ran: the fresh copy, with what they wrote
    stdout: dict[int, str]  # by the README line of the block's fence
    stderr: dict[int, str]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Tutorial:
    """Run every block; what each printed, by the README line of its fence."""
    clone = _fresh_copy(tmp_path_factory.mktemp("readme"))
    assert not (clone.parent / "shared").exists()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ABKIT_DB", "GITHUB_STEP_SUMMARY", "VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    env["NO_COLOR"] = "1"
    result = Tutorial(clone, {}, {})
    for block in readme_blocks((REPO / "README.md").read_text(encoding="utf-8")):
        if block.skip:
            continue
        script = runnable(block.code)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"README.md line {block.line}: exit {done.returncode}\n{script}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        result.stdout[block.line] = done.stdout
        result.stderr[block.line] = done.stderr
    return result


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_every_block_runs_or_says_why_not() -> None:
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 15
    for block in blocks:
        assert block.skip is None or len(block.skip) > 20, (block.line, block.skip)
        # an example names files that exist, or that an earlier block writes
        assert "RUN " not in block.code, block.line
        assert "RUN\n" not in block.code, block.line


def test_setup_steps_are_dropped_and_the_rest_kept() -> None:
    quick = (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[report]" && abkit demo'
    )
    assert runnable(quick) == "abkit demo"
    assert runnable('pip install -e ".[report]"   # charts\nabkit report') == "abkit report"
    assert runnable("abkit train lstm --out x && abkit replay") == (
        "abkit train lstm --out x && abkit replay"
    )


def _block_after(heading: str) -> int:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    fence = text.index("```bash", start)
    return text.count("\n", 0, fence) + 1


# (the README's heading of the section, text its commands print, squashed)
QUOTED = [
    # the caption of the README's lift chart: `abkit compare --claim 0.2` on the default demo
    ("## Compare A/B arms", "lift +14.7%, 95% CI [+2.2%, +28.7%]"),
    # the CI section's example output (the committed baseline's users)
    ("### The gate", "vs baseline ci/als (experiments/ci.baseline.json), 1,900 paired users"),
    # "What the demo shows", step 5: an ALS with 2 factors fails the gate with exit code 1
    ("## Quick start", "exit code in CI: 1"),
]


def test_every_block_runs_in_order(tutorial: Tutorial) -> None:
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert sorted(tutorial.stdout) == [b.line for b in blocks if not b.skip]


@pytest.mark.parametrize(("heading", "quoted"), QUOTED)
def test_quoted_output(tutorial: Tutorial, heading: str, quoted: str) -> None:
    assert quoted in _squash(tutorial.stdout[_block_after(heading)])


def test_ingest_examples_land_in_their_own_store(tutorial: Tutorial) -> None:
    listing = tutorial.stdout[_block_after("## Ingest your own logs")]
    comment = re.search(r"abkit info --db examples.duckdb +# (.*)", _readme())
    assert comment is not None
    for dataset in comment[1].split(", "):
        assert dataset in listing
    # the demo's store kept its one dataset, so the later commands need no --dataset
    assert "several datasets" not in "".join(tutorial.stderr.values())


def test_imported_model_warns_of_leakage(tutorial: Tutorial) -> None:
    # the README quotes the warning every replay of an imported model prints
    stderr = _squash(tutorial.stderr[_block_after("## Bring your own model")])
    assert "imported without a training fingerprint" in stderr


def test_demo_report_as_described(tutorial: Tutorial) -> None:
    # "`abkit demo` writes `report.html` (10 charts on the default demo; about 600 KB)"
    match = re.search(
        r"writes `report.html` \((\d+) charts on the default\s+demo; about (\d+) KB\)", _readme()
    )
    assert match is not None
    page = (tutorial.folder / "report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/svg+xml') == int(match[1])
    assert abs(len(page.encode()) / 1000 - int(match[2])) < 0.2 * int(match[2])


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_a_worse_model_fails_the_gate_as_quoted(tutorial: Tutorial) -> None:
    # the CI section: "Change the model in the spec (e.g. `factors = 2`) and that step fails
    # with exit code 1:" followed by the gate's first lines, quoted
    text = _readme()
    found = re.search(r"Change the model in\s+the spec \(e\.g\. `factors = 2`\)", text)
    assert found is not None
    start = found.start()
    quoted = text[text.index("```\n", start) + 4 : text.index("\n```", start + 60)]
    spec = tutorial.folder / "experiments" / "ci.toml"
    worse = tutorial.folder / "experiments" / "ci-worse.toml"
    source = spec.read_text(encoding="utf-8")
    assert source.count("factors = 16") == 1
    worse.write_text(source.replace("factors = 16", "factors = 2"), encoding="utf-8")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "abkit"), "gate", str(worse), "--db", "worse.duckdb"],
        cwd=tutorial.folder,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    # the run id differs from run to run: the README writes it as als-...
    printed = re.sub(r"run als-[0-9a-f]+", "run als-...", _squash(done.stdout))
    assert _squash(quoted) in printed
