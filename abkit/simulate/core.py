"""``simulate()``: write a synthetic dataset with planted, exactly known effects."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from abkit.data.store import check_writable, open_store, remove_stale_temp_files
from abkit.errors import StoreError
from abkit.simulate.config import SimulationConfig
from abkit.simulate.generate import generate_chunk
from abkit.simulate.world import STREAM_CHUNKS, World, stream
from abkit.simulate.writer import SimulationWriter, copy_dataset

if TYPE_CHECKING:
    from abkit.simulate.writer import SimulationWriter

# Users per chunk = CHUNK_CELLS // items: the users x items matrices of a chunk (relevance,
# browsing and policy distributions, float64) then take about 32 MB each, whatever the number
# of users, so peak memory is bounded by the chunk, not by the dataset.
CHUNK_CELLS = 4_000_000
MIN_CHUNK_USERS = 16


@dataclass(frozen=True, kw_only=True)
class SimulationSummary:
    """What :func:`simulate` wrote.

    ``truth`` holds the planted truth also stored in the ``truth`` table, keyed ``metric``
    for experiment-level values (``lift``, ``srm``) and ``metric[arm]`` for per-arm values
    (``conversion_rate[treatment]``, ``policy_ctr_on:control[treatment]``...).
    """

    dataset: str
    experiment: str
    db: str
    users: int
    items: int
    sessions: int
    events: int
    impressions: int
    assignments: int
    arm_users: dict[str, int]
    truth: dict[str, float]
    elapsed_seconds: float
    config: SimulationConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "experiment": self.experiment,
            "db": self.db,
            "users": self.users,
            "items": self.items,
            "sessions": self.sessions,
            "events": self.events,
            "impressions": self.impressions,
            "assignments": self.assignments,
            "arm_users": dict(self.arm_users),
            "truth": dict(self.truth),
            "elapsed_seconds": self.elapsed_seconds,
            "config": self.config.to_dict(),
        }


def chunk_users(config: SimulationConfig) -> int:
    """Users generated per chunk (depends on the config only, so output is deterministic)."""
    return max(MIN_CHUNK_USERS, min(config.users, CHUNK_CELLS // config.items))


def truth_rows(
    world: World, expected_clicks: np.ndarray, rounds: np.ndarray
) -> list[tuple[str | None, str, float]]:
    """The planted truth: (variant or None, metric, value).

    Per arm: ``conversion_rate`` (exact ``E[min(1, q(1+L))]``), ``conversion_lift`` (exact
    relative difference to control, equal to the planted lift unless the clip binds),
    ``clipped_share``, ``revenue_per_user``, ``design_share`` (the split), ``expected_share``
    (the share expected among logged assignments after the planted SRM loss), ``policy_ctr``
    (exact expected CTR of the arm's logging policy over its own logged rounds) and
    ``policy_ctr_on:<logged arm>`` (the arm's policy evaluated exactly on another arm's logged
    rounds: the target of an off-policy estimate from that arm's logs). Experiment level:
    ``lift`` (planted lift of the first non-control arm) and ``srm`` (planted loss fraction).
    """
    config = world.config
    arms = config.arms
    rows: list[tuple[str | None, str, float]] = [
        (None, "lift", float(config.lifts[1])),
        (None, "srm", float(config.srm)),
    ]
    control_rate = world.conversion_rate(0)
    kept = np.array([s * (1.0 if k == 0 else 1.0 - config.srm) for k, s in enumerate(config.split)])
    expected_share = kept / kept.sum()
    for k, arm in enumerate(arms):
        rate = world.conversion_rate(k)
        rows += [
            (arm, "conversion_rate", rate),
            (arm, "conversion_lift", rate / control_rate - 1.0),
            (arm, "clipped_share", world.clipped_share(k)),
            (arm, "revenue_per_user", world.revenue_per_user(k)),
            (arm, "design_share", float(config.split[k])),
            (arm, "expected_share", float(expected_share[k])),
        ]
        if rounds[k]:
            rows.append((arm, "policy_ctr", float(expected_clicks[k, k] / rounds[k])))
        for a, logged in enumerate(arms):
            if rounds[a]:
                ctr = float(expected_clicks[k, a] / rounds[a])
                rows.append((arm, f"policy_ctr_on:{logged}", ctr))
    return rows


def simulate(
    config: SimulationConfig,
    db: str | Path | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    wait: float = 0.0,
) -> SimulationSummary:
    """Simulate ``config`` into the store ``db`` (default ``$ABKIT_DB`` or ``./abkit.duckdb``).

    Users are generated in chunks (:func:`chunk_users`) with vectorised numpy and appended to
    a private staging store next to ``db`` (``.NAME.simulate-PID.tmp``, removed afterwards),
    so peak memory is bounded by the chunk. The finished dataset is then copied into ``db``
    in ONE transaction. Why stage: DuckDB writes large uncommitted appends straight into the
    database file, so a simulation interrupted halfway inside the store's transaction would
    roll back its rows but leave the file's bytes changed; staged, ``db`` is untouched until
    the final copy (seconds), and its write lock is held only for that copy.

    A dataset of the same name already in ``db``, or a store that another process has locked,
    is refused with a :class:`~abkit.errors.StoreError` before any work; ``wait`` seconds
    retries the lock (before the work and again for the final copy) instead of failing at
    once. Staging files of killed simulations (of dead processes) next to ``db`` are removed
    with an :class:`~abkit.errors.AbkitWarning`. ``on_progress(done_users,
    total_users)`` is called after each chunk, ``on_phase(name)`` when the work after the
    users starts (``"writing the store"``: the copy into ``db``, a long step for large
    simulations); nothing is printed. The model is described in
    :mod:`abkit.simulate.world`, the session anatomy in :mod:`abkit.simulate.generate`.
    """
    import os

    started = time.perf_counter()
    # Refuse early, before any work: a locked store, another schema, an existing dataset.
    path = check_writable(db, wait=wait)
    if path.exists():
        with open_store(path) as store:
            _refuse_existing(store.has_dataset(config.dataset), path, config.dataset)

    world = World.from_config(config)
    stage = path.parent / f".{path.name}.simulate-{os.getpid()}.tmp"
    # A staging file with this process's PID is from a dead process whose PID was reused.
    remove_stale_temp_files(path, include_pid=os.getpid())
    try:
        with open_store(stage, write=True) as staging:
            # No transaction here: the staging file is private, and one big transaction
            # would keep its row groups in memory (measured: RSS grew ~4.5 KB per user).
            writer = SimulationWriter(staging.con, world)
            counts = _generate(world, writer, on_progress)
        if on_phase is not None:
            on_phase("writing the store")
        with open_store(path, write=True, wait=wait) as store:
            _refuse_existing(store.has_dataset(config.dataset), path, config.dataset)
            with store.transaction() as con:
                copy_dataset(con, stage)
    finally:
        for leftover in (stage, stage.with_name(stage.name + ".wal")):
            leftover.unlink(missing_ok=True)

    truth = {
        metric if arm is None else f"{metric}[{arm}]": value for arm, metric, value in counts.truth
    }
    return SimulationSummary(
        dataset=config.dataset,
        experiment=config.experiment,
        db=str(path),
        users=config.users,
        items=config.items,
        sessions=counts.sessions,
        events=counts.events,
        impressions=counts.impressions,
        assignments=int(counts.arm_users.sum()),
        arm_users={arm: int(n) for arm, n in zip(config.arms, counts.arm_users, strict=True)},
        truth=truth,
        elapsed_seconds=time.perf_counter() - started,
        config=config,
    )


def _refuse_existing(exists: bool, path: Path, dataset: str) -> None:
    if exists:
        raise StoreError(
            f"{path}: dataset '{dataset}' already exists; choose another name with --dataset"
        )


@dataclass(frozen=True, kw_only=True)
class _Counts:
    sessions: int
    events: int
    impressions: int
    arm_users: np.ndarray
    truth: list[tuple[str | None, str, float]]


def _generate(
    world: World, writer: SimulationWriter, on_progress: Callable[[int, int], None] | None
) -> _Counts:
    """Generate and write every chunk, then the experiment and its truth."""

    config = world.config
    n_arms = len(config.arms)
    expected_clicks = np.zeros((n_arms, n_arms))
    rounds = np.zeros(n_arms, dtype=np.int64)
    arm_users = np.zeros(n_arms, dtype=np.int64)
    events = impressions = sessions = slates = 0
    step = chunk_users(config)
    writer.write_dataset()
    writer.write_items()
    for index, lo in enumerate(range(0, config.users, step)):
        hi = min(config.users, lo + step)
        chunk = generate_chunk(world, lo, hi, stream(config.seed, STREAM_CHUNKS, index))
        writer.write_chunk(chunk, slate_offset=slates)
        slates += chunk.n_slates
        events += len(chunk.ev_user)
        impressions += len(chunk.im_user)
        sessions += chunk.n_sessions
        expected_clicks += chunk.expected_clicks
        rounds += chunk.rounds
        arm_users += np.bincount(chunk.as_arm, minlength=n_arms)
        del chunk
        if on_progress is not None:
            on_progress(hi, config.users)
    rows = truth_rows(world, expected_clicks, rounds)
    writer.write_experiment()
    writer.write_truth(rows)
    return _Counts(
        sessions=sessions,
        events=events,
        impressions=impressions,
        arm_users=arm_users,
        truth=rows,
    )
