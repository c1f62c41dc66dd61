"""Train / test splits of interaction logs for offline evaluation.

``temporal`` (the default): one global cut-off time; every event before it is training data,
every event at or after it is test data, so no training event comes from the future of any
test event. ``temporal:2024-01-10`` (or a full ISO time) sets the cut-off; plain ``temporal``
puts it at 80% of the events' time range (``temporal:0.3`` keeps the last 30% for test).
Users with no training event are cold and not evaluated.

``leave-last-out``: each user's last interaction (latest time; ties broken by item id) is the
test item, the rest is training data. Users with a single interaction keep it for training
and are not evaluated. Note that this split is not time-consistent across users: one user's
training events may be later than another's test event.

The split string stored with a run is the *resolved* one (``temporal:2024-01-10T19:12:00``),
so two runs on the same data and split carry the same string.

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
from abkit.errors import InputError

__all__ = [
    "MIN_EVAL_USERS",
    "SPLIT_KINDS",
    "SplitSpec",
    "few_users_warning",
    "parse_split",
    "resolve_cutoff",
]

SplitKind = Literal["temporal", "leave-last-out"]
SPLIT_KINDS: tuple[str, ...] = ("temporal", "leave-last-out")
DEFAULT_TEST_FRACTION = 0.2
MIN_EVAL_USERS = 20  # fewer evaluated users than this: the run carries a warning


@dataclass(frozen=True, kw_only=True)
class SplitSpec:
    """A parsed split: its kind and, for ``temporal``, a cut-off or a test share of time."""

    kind: SplitKind
    cutoff: datetime | None = None
    test_fraction: float = DEFAULT_TEST_FRACTION

    def __str__(self) -> str:
        if self.kind == "leave-last-out":
            return "leave-last-out"
        if self.cutoff is not None:
            return f"temporal:{self.cutoff.isoformat(timespec='seconds')}"
        if self.test_fraction == DEFAULT_TEST_FRACTION:
            return "temporal"
        return f"temporal:{self.test_fraction:g}"


def parse_split(text: str) -> SplitSpec:
    """Parse ``temporal``, ``temporal:2024-01-10[T12:00:00]``, ``temporal:0.3`` or
    ``leave-last-out``; a one-line error otherwise."""
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
        if sep:
            raise InputError(f"--split {raw!r}: leave-last-out takes no argument")
        return SplitSpec(kind="leave-last-out")
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
