"""Progress phases a command shows: ALS's fit iteration by iteration (implicit's callback),
then ranking, then writing the run; a simulation's users, then writing the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from abkit.replay.runner import replay
from abkit.simulate import SimulationConfig, simulate
from tests.replay.helpers import structured_events, write_store


class Recorder:
    """A :data:`abkit.replay.runner.Progress` that records each phase, its length and how far
    it was advanced."""

    def __init__(self) -> None:
        self.phases: list[list] = []  # [description, total, advanced]

    @contextmanager
    def __call__(self, description: str, total: int | None) -> Iterator:
        entry = [description, total, 0]
        self.phases.append(entry)

        def advance(n: int = 1) -> None:
            entry[2] += n

        yield advance


def test_als_fit_reports_each_iteration_then_ranking_then_writing(tmp_path: Path) -> None:
    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=60, seed=3))
    recorder = Recorder()
    replay(db, model="als", params={"iterations": 4, "factors": 4}, progress=recorder)
    names = [p[0] for p in recorder.phases]
    assert names == ["fitting als", "ranking", "writing the run"]
    fit, ranking, writing = recorder.phases
    assert fit[1:] == [4, 4]  # implicit called back once per iteration
    assert ranking[1] == ranking[2] > 0
    assert writing[1] is None  # a phase of unknown length


def test_a_model_without_steps_fits_as_one_phase(tmp_path: Path) -> None:
    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=40, seed=1))
    recorder = Recorder()
    replay(db, model="popularity", progress=recorder, write=False)
    assert recorder.phases[0][:2] == ["fitting popularity", None]
    assert "writing the run" not in [p[0] for p in recorder.phases]


def test_simulate_says_when_it_writes_the_store(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    done = [0]

    def on_progress(users: int, total: int) -> None:
        done[0] = users

    config = SimulationConfig(users=300, items=50, days=3, pre_days=1, seed=2)
    simulate(
        config,
        tmp_path / "s.duckdb",
        on_progress=on_progress,
        on_phase=lambda name: seen.append((name, done[0])),
    )
    assert seen == [("writing the store", 300)]  # after every user was generated
