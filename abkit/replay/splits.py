"""Train / test splits of interaction logs for offline evaluation.

``temporal`` (the default): one global cut-off time; every event before it is training data,
every event at or after it is test data, so no training event comes from the future of any
test event. ``temporal:2024-01-10`` (or a full ISO time) sets the cut-off; plain ``temporal``
puts it at 80% of the events' time range (``temporal:0.3`` keeps the last 30% for test).
Users with no training event are cold and not evaluated.

``leave-last-out``: each user's last interaction (latest time) is the test item, the rest is
training data. Users with a single interaction keep it for training and are not evaluated.
Several interactions in the user's last timestamp (common: MovieLens-100k stores seconds, and
415 of its 943 users rated several films in their last second) are a tie, broken by a
**seeded random draw**, never by id order (the largest id compared as text would pick less
popular items and bias the test set): among the tied rows the held-out one is the one with the
smallest ``md5(seed, user, item)``, so every tied item is equally likely, and the same seed
gives the same split on any machine. The seed is the replay's ``seed`` unless the split names
one (``leave-last-out:seed=7``). Note that this split is not time-consistent across users: one
user's training events may be later than another's test event.

The split string stored with a run is the *resolved* one (``temporal:2024-01-10T19:12:00``,
``leave-last-out:seed=0``), so two runs on the same data and split carry the same string.

A split that leaves fewer than :data:`MIN_EVAL_USERS` (20) users to evaluate still runs, but the
run carries a warning (:func:`few_users_warning`): with so few users, one user more or less
moves a per-user mean metric by over 5% of its range, so a ranking of models is mostly noise.
This happens on small or short logs, where the default cut-off at 80% of the time range leaves
few users with both training and new test events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from abkit._util import unknown_choice
from abkit.errors import InputError, param

__all__ = [
    "MIN_EVAL_USERS",
    "SPLIT_KINDS",
    "SplitSpec",
    "few_users_warning",
    "parse_split",
    "resolve_cutoff",
    "resolve_seed",
]

SplitKind = Literal["temporal", "leave-last-out"]
SPLIT_KINDS: tuple[str, ...] = ("temporal", "leave-last-out")
DEFAULT_TEST_FRACTION = 0.2
MIN_EVAL_USERS = 20  # fewer evaluated users than this: the run carries a warning


@dataclass(frozen=True, kw_only=True)
class SplitSpec:
    """A parsed split: its kind and, for ``temporal``, a cut-off or a test share of time; for
    ``leave-last-out``, the seed that breaks ties in a user's last timestamp (None: the
    replay's seed, see :func:`resolve_seed`)."""

    kind: SplitKind
    cutoff: datetime | None = None
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int | None = None

    def __str__(self) -> str:
        if self.kind == "leave-last-out":
            return "leave-last-out" if self.seed is None else f"leave-last-out:seed={self.seed}"
        if self.cutoff is not None:
            return f"temporal:{self.cutoff.isoformat(timespec='seconds')}"
        if self.test_fraction == DEFAULT_TEST_FRACTION:
            return "temporal"
        return f"temporal:{self.test_fraction:g}"


def parse_split(text: str) -> SplitSpec:
    """Parse ``temporal``, ``temporal:2024-01-10[T12:00:00]``, ``temporal:0.3``,
    ``leave-last-out`` or ``leave-last-out:seed=N``; a one-line error otherwise."""
    raw = text.strip()
    kind, sep, arg = raw.partition(":")
    kind = kind.strip().lower()
    if kind not in SPLIT_KINDS:
        raise InputError(
            "--split: "
            + unknown_choice("split", kind, SPLIT_KINDS)
            + " (temporal takes :DATE or :SHARE, e.g. temporal:2024-01-10)"
        )
    if kind == "leave-last-out":
        if not sep:
            return SplitSpec(kind="leave-last-out")
        name, _, value = arg.strip().partition("=")
        try:
            seed = int(value.strip()) if name.strip().lower() == "seed" else -1
        except ValueError:
            seed = -1
        if seed < 0:
            raise InputError(
                f"--split {raw!r}: leave-last-out takes no argument or seed=N "
                "(a non-negative integer), e.g. leave-last-out:seed=7"
            )
        return SplitSpec(kind="leave-last-out", seed=seed)
    arg = arg.strip()
    if not sep or not arg:
        return SplitSpec(kind="temporal")
    try:
        share = float(arg)
    except ValueError:
        share = None
    if share is not None:
        if not 0 < share < 1:
            raise InputError(f"--split {raw!r}: the test share must be between 0 and 1")
        return SplitSpec(kind="temporal", test_fraction=share)
    try:
        cutoff = datetime.fromisoformat(arg.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--split {raw!r}: expected a date or time like 2024-01-10 or 2024-01-10T12:00:00"
        ) from None
    if cutoff.tzinfo is not None:  # the store keeps naive UTC timestamps
        cutoff = (cutoff - (cutoff.utcoffset() or timedelta(0))).replace(tzinfo=None)
    return SplitSpec(kind="temporal", cutoff=cutoff)


def resolve_cutoff(spec: SplitSpec, first: datetime, last: datetime) -> SplitSpec:
    """A temporal split with its cut-off fixed (to the second) from the events' time range."""
    if spec.kind != "temporal" or spec.cutoff is not None:
        return spec
    cutoff = first + (last - first) * (1 - spec.test_fraction)
    if cutoff.microsecond:  # round up to a whole second so the split string is exact
        cutoff = cutoff.replace(microsecond=0) + timedelta(seconds=1)
    return SplitSpec(kind="temporal", cutoff=cutoff, test_fraction=spec.test_fraction)


def resolve_seed(spec: SplitSpec, seed: int) -> SplitSpec:
    """A leave-last-out split with its tie-breaking seed fixed (``seed`` unless it names one)."""
    if spec.kind != "leave-last-out" or spec.seed is not None:
        return spec
    if seed < 0:
        raise InputError(f"{param('seed')} must be a non-negative integer, got {seed}")
    return SplitSpec(kind="leave-last-out", seed=seed)


def few_users_warning(users: int, split: SplitSpec | str) -> str | None:
    """The warning for a split that leaves fewer than :data:`MIN_EVAL_USERS` users to
    evaluate, or None."""
    if users >= MIN_EVAL_USERS:
        return None
    return (
        f"split {split} leaves only {users} user(s) to evaluate (fewer than {MIN_EVAL_USERS}): "
        "the metrics are too noisy to compare models; try another --split (an earlier "
        "temporal cut-off such as temporal:0.5, or leave-last-out) or more data"
    )
