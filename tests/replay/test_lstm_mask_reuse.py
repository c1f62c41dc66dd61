"""The lstm model reuses one zero mask between calls: no call may see another call's -inf.

``LSTMRecommender.recommend`` scatters ``-inf`` on the seen items into a kept zero buffer and
resets exactly those cells afterwards (also when inference fails). Each call's answer must
equal a fresh model's answer for the same users, in any order of calls and batch sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abkit.errors import ModelError
from abkit.plugins import TrainingData, create_recommender
from tests.replay.helpers import known_answer_data, write_onnx_model
from tests.replay.test_lstm_onnx import random_weights


@pytest.fixture
def data() -> TrainingData:
    return known_answer_data()


def _model(path: Path, data: TrainingData):
    model = create_recommender("lstm", {"device": "cpu"})
    model.load(path, data)
    return model


def test_answers_do_not_depend_on_earlier_calls(data: TrainingData, tmp_path: Path) -> None:
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items), seq_len=4)
    reused = _model(path, data)
    users = np.arange(data.n_users)
    calls = [(users, True), (users[:5], False), (users[3:], True), (users[::2], False)]
    for batch, exclude_seen in [*calls, *calls[::-1]]:
        got = reused.recommend(data, batch, 3, exclude_seen=exclude_seen)
        fresh = _model(path, data).recommend(data, batch, 3, exclude_seen=exclude_seen)
        np.testing.assert_array_equal(got[0], fresh[0])
        np.testing.assert_array_equal(got[1], fresh[1])
        np.testing.assert_array_equal(reused.score(data, batch), fresh_score(path, data, batch))
    assert not reused._zeros.any()


def fresh_score(path: Path, data: TrainingData, users: np.ndarray) -> np.ndarray:
    return _model(path, data).score(data, users)


def test_mask_is_reset_when_inference_fails(
    data: TrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items), seq_len=4)
    model = _model(path, data)
    users = np.arange(data.n_users)
    expected = model.recommend(data, users, 3)

    def fail(*args, **kwargs):
        raise ModelError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(model, "_run", fail)
        with pytest.raises(ModelError, match="boom"):
            model.recommend(data, users, 3)
    assert not model._zeros.any()
    again = model.recommend(data, users, 3)
    np.testing.assert_array_equal(again[0], expected[0])
