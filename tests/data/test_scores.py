"""Reading a file of probabilities and labels: CSV or Parquet, bad rows named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.data.scores import read_scores
from abkit.errors import InputError


def test_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "Score": [0.25, 1.0, 0.0], "label": ["1", "true", "0"]}
    )
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.assign(label=[1, 1, 0]).to_parquet(tmp_path / "s.parquet")
    for name in ("s.csv", "s.parquet"):
        scores, labels = read_scores(tmp_path / name)
        np.testing.assert_array_equal(scores, [0.25, 1.0, 0.0])
        np.testing.assert_array_equal(labels, [1, 1, 0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("score,label\n0.2,1\nabc,0\n", "row 2: score 'abc' is not a probability in [0, 1]"),
        ("score,label\n0.2,1\n1.5,0\n", "row 2: score '1.5' is not a probability in [0, 1]"),
        ("score,label\n0.2,1\n0.3,\n", "row 2: label is empty"),
        ("score,label\n0.2,yes\n", "row 1: label 'yes' is not 0 or 1"),
        ("prob,y\n0.2,1\n", "missing column(s) score, label; expected columns score and label"),
        ("score,label\n", "no rows"),
    ],
)
def test_bad_files_are_refused_naming_the_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_scores(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)
