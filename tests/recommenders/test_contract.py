"""One contract every registered recommender passes, on data with known right answers.

Models come from the entry-point registry (the built-ins register like any plug-in), so a
new plug-in is covered by adding its name to ``MODELS`` with a way to build it. GPU variants
(``device="cuda"``) are parametrised in only when the hardware is there (implicit's
``HAS_CUDA``, onnxruntime's CUDA provider).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from abkit.errors import InputError, ModelError
from abkit.plugins import (
    Recommender,
    TrainingData,
    available_recommenders,
    create_recommender,
    load_recommender_class,
)
from tests.replay.helpers import (
    known_answer_data,
    missing_group_item,
    successor_weights,
    write_onnx_model,
)


def _als_cuda() -> bool:
    from abkit_recommenders.als import has_cuda

    return has_cuda()


def _ort_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


CASES = [
    ("random", "cpu"),
    ("popularity", "cpu"),
    ("ctr", "cpu"),
    ("logistic", "cpu"),
    *[("als", d) for d in (["cpu", "cuda"] if _als_cuda() else ["cpu"])],
    *[("lstm", d) for d in (["cpu", "cuda"] if _ort_cuda() else ["cpu"])],
]


def build(name: str, device: str, data: TrainingData, tmp_path: Path) -> Recommender:
    """A fitted model: fit() for the trainable ones, the known-answer ONNX graph for lstm
    (so the contract needs no torch)."""
    if name == "lstm":
        model = create_recommender("lstm", {"device": device})
        path = write_onnx_model(tmp_path / "lstm.onnx", data, successor_weights(data.n_items))
        model.load(path, data)
        return model
    params: dict[str, object] = {}
    if name == "als":
        # two taste groups: rank 2 is the right model
        params = {"factors": 2, "iterations": 30, "regularization": 0.1, "device": device}
    model = create_recommender(name, params)
    model.fit(data)
    return model


@pytest.fixture(scope="module")
def data() -> TrainingData:
    # with exposures and context too, for the impression-trained models (the others ignore them)
    return known_answer_data(exposures=True)


@pytest.mark.parametrize(("name", "device"), CASES)
class TestContract:
    def test_registered_like_a_plugin(self, name: str, device: str) -> None:
        cls = load_recommender_class(name)
        assert cls.name == name
        assert isinstance(cls.requires, tuple)
        info = {i.name: i for i in available_recommenders()}[name]
        assert info.status == "ok"
        assert info.target.startswith("abkit_recommenders.")

    def test_output_shape_order_and_range(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        assert isinstance(model, Recommender)
        users = np.arange(data.n_users)
        items, scores = model.recommend(data, users, 4)
        assert items.shape == scores.shape == (data.n_users, 4)
        assert items.dtype == np.int64
        assert scores.dtype == np.float32
        assert ((items >= 0) & (items < data.n_items)).all()
        assert all(len(set(row)) == 4 for row in items.tolist())
        assert (np.diff(scores, axis=1) <= 1e-6).all()

    def test_seen_items_are_excluded_unless_kept(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        users = np.arange(data.n_users)
        items, _ = model.recommend(data, users, 3)
        for u, row in zip(users, items.tolist(), strict=True):
            seen = set(data.seen_rows(np.array([u])).indices.tolist())
            assert not seen & set(row)
        # 7 unseen items per user: asking for all 12 must reach into the seen ones
        everything, _ = model.recommend(data, users, data.n_items, exclude_seen=False)
        assert sorted(everything[0].tolist()) == list(range(data.n_items))

    def test_scores_agree_with_score_matrix(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        users = np.array([0, 5, 13])
        full = model.score(data, users)
        assert full.shape == (3, data.n_items)
        items, scores = model.recommend(data, users, 5, exclude_seen=False)
        np.testing.assert_allclose(
            np.take_along_axis(full, items, axis=1), scores, rtol=1e-5, atol=1e-5
        )

    def test_right_answer(self, name: str, device: str, data: TrainingData, tmp_path: Path) -> None:
        model = build(name, device, data, tmp_path)
        users = np.arange(data.n_users)
        items, _ = model.recommend(data, users, 1)
        top = items[:, 0].tolist()
        if name in ("als", "lstm", "logistic"):
            assert top == [missing_group_item(data, u) for u in users]
        elif name in ("popularity", "ctr"):
            counts = data.item_user_counts()
            expected = []
            for u in users:
                seen = set(data.seen_rows(np.array([u])).indices.tolist())
                unseen = [i for i in range(data.n_items) if i not in seen]
                expected.append(max(unseen, key=lambda i: (counts[i], -i)))
            assert top == expected
        else:  # random: every unseen item turns up for someone, and the seed decides
            assert len(set(top)) > 3
            other = create_recommender("random", {"seed": 1})
            assert not np.array_equal(other.recommend(data, users, 1)[0][:, 0], top)

    def test_deterministic_and_batch_independent(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        users = np.arange(data.n_users)
        whole, _ = model.recommend(data, users, 3)
        parts = np.vstack(
            [model.recommend(data, users[i : i + 7], 3)[0] for i in range(0, users.size, 7)]
        )
        np.testing.assert_array_equal(whole, parts)

    def test_save_load_round_trip(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        path = tmp_path / ("saved.onnx" if name == "lstm" else "saved.npz")
        model.save(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:  # never needs pickle
                assert all(npz[key].dtype != object for key in npz.files)
        again = create_recommender(name, {"device": device} if name in ("als", "lstm") else {})
        again.load(path, data)
        users = np.arange(data.n_users)
        np.testing.assert_array_equal(
            again.recommend(data, users, 3)[0], model.recommend(data, users, 3)[0]
        )
        json.dumps(again.params())

    def test_refuses_other_data(
        self, name: str, device: str, data: TrainingData, tmp_path: Path
    ) -> None:
        model = build(name, device, data, tmp_path)
        if name == "random":
            model = create_recommender("random", {"seed": 11})
        path = tmp_path / ("saved.onnx" if name == "lstm" else "saved.npz")
        model.save(path)
        other = known_answer_data((10, 10))
        if name == "random":
            # nothing learnt, so nothing tied to the data: it loads anywhere, seed and all
            again = create_recommender(name)
            again.load(path, other)
            assert again.params() == model.params() == {"seed": 11}
            return
        with pytest.raises(ModelError, match="trained on data with fingerprint"):
            create_recommender(name).load(path, other)


def test_unknown_model_lists_the_known_ones() -> None:
    message = (
        "unknown model 'alss' (did you mean 'als'?); expected one of: als, ctr, logistic, lstm, "
        "popularity, random"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        create_recommender("alss")


def test_unknown_parameter_and_bad_value() -> None:
    with pytest.raises(
        InputError,
        match=re.escape("unknown parameter of model 'als' 'factor' (did you mean 'factors'?)"),
    ):
        create_recommender("als", {"factor": 3})
    with pytest.raises(
        InputError, match=re.escape("model 'als' parameter factors='many': expected int")
    ):
        create_recommender("als", {"factors": "many"})
    assert create_recommender("als", {"factors": "3"}).params()["factors"] == 3


def test_models_listing_reports_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "implicit" else real(n, *a)
    )
    info = {i.name: i for i in available_recommenders()}
    assert info["als"].status == "missing package"
    assert info["als"].install == 'pip install "abkit-lift[als]"'
    assert info["random"].status == "ok"
    from abkit.errors import MissingExtraError

    with pytest.raises(MissingExtraError, match=re.escape('pip install "abkit-lift[als]"')):
        create_recommender("als")
