"""Bring your own model: wrap any ONNX ``history -> scores`` graph in abkit's LSTM contract.

A model exported elsewhere (Keras through tf2onnx, torch, ...) rarely has abkit's signature
(:mod:`abkit.replay.lstm_contract`): its history input may be int32, right-padded, named
otherwise, count items from another offset, and it outputs scores only, without ``k``,
``exclude`` or a ``TopK``. :func:`wrap_model` composes, with ``onnx.compose.merge_models``,

    adapter (abkit's history -> the model's)  ->  the model  ->  head

* the adapter maps abkit's history (catalogue index + 1, left-padded with 0, int64) through a
  table to the model's tokens (its item index + ``index_offset``; ``pad_token`` for padding),
  moves the padding to the right when the model wants it there (``GatherElements`` with a
  per-row rotation: row ``r`` holding ``n`` items is rotated left by ``seq_len - n``) and
  casts to int32 when the model's input is int32;
* the head reorders the model's score columns to the catalogue's order (``Gather`` on axis
  1; model items outside the catalogue are dropped), casts to float32 and adds abkit's
  ``k`` / ``exclude`` / ``TopK`` (:func:`abkit_recommenders.lstm_graph.add_topk_head`).

:func:`check_model` reads the raw model's signature with onnxruntime and refuses, naming the
mismatch, what cannot be wrapped; :func:`wrap_model` checks the wrapped graph against the raw
one (onnxruntime on both, the adapter redone in numpy by :func:`adapt_histories`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from abkit_recommenders.lstm_graph import add_topk_head

from abkit.errors import InputError, MissingExtraError, ModelError, param

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FLOAT_TYPES",
    "INT_TYPES",
    "InputLayout",
    "RawSignature",
    "TensorInfo",
    "adapt_histories",
    "check_model",
    "wrap_model",
]

# onnxruntime's type strings -> numpy dtype names of a history input (float32: Keras models
# converted by tf2onnx take their token ids as floats unless built with an int Input)
INT_TYPES = {"tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(float)": "float32"}
FLOAT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a graph as onnxruntime reports it (``shape`` entries are ints
    for fixed sizes, strings or None for dynamic ones)."""

    name: str
    type: str
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.type.removeprefix('tensor(').rstrip(')')}[{dims}]"


@dataclass(frozen=True)
class RawSignature:
    """The inputs and outputs of a raw model."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True, kw_only=True)
class InputLayout:
    """How the model reads a history: input ``name`` of ``dtype`` [batch, ``seq_len``],
    items as their model index + ``index_offset``, ``pad_token`` where there is none,
    padded on the ``padding`` side (``left``: the most recent item is in the last column)."""

    name: str
    dtype: Literal["int32", "int64", "float32"]
    seq_len: int
    padding: Literal["left", "right"]
    index_offset: int
    pad_token: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "history_input": self.name,
            "history_dtype": self.dtype,
            "seq_len": self.seq_len,
            "padding": self.padding,
            "index_offset": self.index_offset,
            "pad_token": self.pad_token,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "onnx", "importing a model") from None
    return ort


def _session(model: bytes, source: str) -> Any:
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{source}: not a valid ONNX model ({_first_line(exc)})") from None


def _infos(values: Any) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(v.name, v.type, tuple(v.shape)) for v in values)


def adapt_histories(
    history: np.ndarray, token_of_item: np.ndarray, layout: InputLayout
) -> np.ndarray:
    """abkit's histories (catalogue index + 1, left-padded with 0) as the model reads them
    (numpy; what the adapter graph computes). ``token_of_item[i]`` is catalogue item ``i``'s
    token (its model index + ``index_offset``)."""
    import numpy as np

    table = np.concatenate([[layout.pad_token], token_of_item]).astype(np.int64)
    tokens = table[history]
    if layout.padding == "right":
        n = (history > 0).sum(axis=1, keepdims=True)
        order = (np.arange(history.shape[1])[None, :] + history.shape[1] - n) % history.shape[1]
        tokens = np.take_along_axis(tokens, order, axis=1)
    return tokens.astype(layout.dtype)


def _pick(
    infos: tuple[TensorInfo, ...],
    name: str | None,
    kind: str,
    role: str,
    option: str,
    source: str,
) -> tuple[str, TensorInfo]:
    """The graph's ``kind`` (input or output) called ``name``, or its only one when ``name`` is
    None; a one-line :class:`ModelError` that lists them otherwise."""
    by_name = {i.name: i for i in infos}
    found = ", ".join(i.describe() for i in infos) or "none"
    if name is None:
        if len(by_name) != 1:
            raise ModelError(
                f"{source}: the graph has {len(by_name)} {kind}s ({found}); name {role} "
                f"with {param(option)}"
            )
        name = next(iter(by_name))
    info = by_name.get(name)
    if info is None:
        raise ModelError(
            f"{source}: no {kind} named '{name}' ({param(option)}); the graph's {kind}s: {found}"
        )
    return name, info


def check_model(
    model: bytes,
    *,
    source: str,
    n_model_items: int,
    history_input: str | None = None,
    history_dtype: str | None = None,
    seq_len: int | None = None,
    default_seq_len: int = 20,
    padding: str = "left",
    index_offset: int = 1,
    pad_token: int = 0,
    logits_output: str | None = None,
) -> tuple[InputLayout, str]:
    """Check a raw model with onnxruntime; returns its input layout and score output name.

    Refusals (:class:`~abkit.errors.ModelError` / ``InputError``, one line naming the
    mismatch): an input other than the history, a history input that is missing, not
    integer, not ``[batch, length]``, of another dtype than ``history_dtype`` or another
    fixed length than ``seq_len``, a fixed batch size, a score output that is missing, not
    ``[batch, n]`` floats, or whose ``n`` is not ``n_model_items``; tokens that collide with
    ``pad_token``; a model that fails on the smallest or largest token.
    """
    import numpy as np

    if padding not in ("left", "right"):
        raise InputError(f"{param('padding')} must be left or right, got {padding!r}")
    if history_dtype is not None and history_dtype not in ("int32", "int64", "float32"):
        raise InputError(
            f"{param('history_dtype')} must be int32, int64 or float32, got {history_dtype!r}"
        )
    if index_offset < 0:
        raise InputError(f"{param('index_offset')} must be >= 0, got {index_offset}")
    if index_offset <= pad_token < index_offset + n_model_items:
        raise InputError(
            f"{param('pad_token')} {pad_token} is also the token of an item (items are "
            f"{index_offset}..{index_offset + n_model_items - 1} with {param('index_offset')} "
            f"{index_offset}); choose a padding token outside that range"
        )
    session = _session(model, source)
    signature = RawSignature(_infos(session.get_inputs()), _infos(session.get_outputs()))
    history_input, info = _pick(
        signature.inputs, history_input, "input", "the history", "history_input", source
    )
    others = [i.describe() for i in signature.inputs if i.name != history_input]
    if others:
        raise ModelError(
            f"{source}: abkit feeds only the history, but the graph also has the inputs "
            f"{', '.join(others)}; export it with one input"
        )
    if info.type not in INT_TYPES:
        raise ModelError(
            f"{source}: the history input {info.describe()} must hold item tokens as int32, "
            "int64 or float32"
        )
    dtype = INT_TYPES[info.type]
    if history_dtype is not None and history_dtype != dtype:
        raise ModelError(
            f"{source}: {param('history_dtype')} {history_dtype}, but the graph's history input "
            f"is {info.describe()}"
        )
    if len(info.shape) != 2:
        raise ModelError(
            f"{source}: the history input {info.describe()} must have two dimensions "
            "[batch, length]"
        )
    batch_dim, length_dim = info.shape
    if isinstance(batch_dim, int):
        raise ModelError(
            f"{source}: the history input {info.describe()} has a fixed batch size "
            f"{batch_dim}; export it with a dynamic batch dimension"
        )
    if isinstance(length_dim, int):
        if seq_len is not None and seq_len != length_dim:
            raise ModelError(
                f"{source}: {param('seq_len')} {seq_len}, but the graph's history input is "
                f"{info.describe()}"
            )
        seq_len = length_dim
    seq_len = default_seq_len if seq_len is None else seq_len
    if seq_len < 1:
        raise InputError(f"{param('seq_len')} must be at least 1, got {seq_len}")

    logits_output, out = _pick(
        signature.outputs, logits_output, "output", "the item scores", "logits_output", source
    )
    if out.type not in FLOAT_TYPES or len(out.shape) != 2:
        raise ModelError(
            f"{source}: the score output {out.describe()} must be floats [batch, n_items]"
        )
    layout = InputLayout(
        name=history_input,
        dtype=dtype,  # type: ignore[arg-type]
        seq_len=seq_len,
        padding=padding,  # type: ignore[arg-type]
        index_offset=index_offset,
        pad_token=pad_token,
    )
    # probes: two short histories holding the smallest token (the shape of the scores),
    # then full histories of the largest token (the item range the model accepts)
    lowest, highest = index_offset, index_offset + n_model_items - 1
    for token in (lowest, highest):
        probe = np.full((2, seq_len), pad_token, dtype=np.int64)
        if token == highest:
            probe[:] = token
        else:
            probe[:, -1 if padding == "left" else 0] = token
        try:
            (scores,) = session.run([logits_output], {history_input: probe.astype(dtype)})
        except Exception as exc:
            raise ModelError(
                f"{source}: the model fails on item token {token} (items are "
                f"{lowest}..{highest} with {param('index_offset')} {index_offset} and "
                f"{n_model_items} items in {param('items')}): {_first_line(exc)}"
            ) from None
        if scores.ndim != 2 or scores.shape[0] != 2:
            raise ModelError(
                f"{source}: the score output '{logits_output}' has shape {list(scores.shape)} "
                "for a batch of 2 histories; expected [2, n_items]"
            )
        if scores.shape[1] != n_model_items:
            hint = (
                "; a model that scores one (history, item) sequence at a time cannot rank a "
                "catalogue in one call (`abkit train lstm --arch seed` builds that kind as "
                "one more LSTM step for every item)"
                if scores.shape[1] == 1
                else ""
            )
            raise ModelError(
                f"{source}: the score output '{logits_output}' has {scores.shape[1]} columns, "
                f"but {param('items')} lists {n_model_items} items{hint}"
            )
    return layout, logits_output


def wrap_model(
    model: bytes,
    *,
    source: str,
    layout: InputLayout,
    logits_output: str,
    token_of_item: np.ndarray,
    column_of_item: np.ndarray,
    probe: np.ndarray,
) -> bytes:
    """The raw ``model`` composed into abkit's contract (see the module docstring).

    ``token_of_item[i]`` / ``column_of_item[i]``: catalogue item ``i``'s token in the model's
    input and its column in the model's scores. ``probe`` (abkit histories) checks the
    result: the wrapped graph's ``logits`` must equal the raw model's scores on the adapted
    histories, reordered to the catalogue.
    """
    import numpy as np

    try:
        import onnx
        from onnx import TensorProto, compose, helper, numpy_helper
    except ImportError:
        raise MissingExtraError("onnx", "onnx", "importing a model") from None

    raw = onnx.load_from_string(model)
    opset = next((o.version for o in raw.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < 13:
        raise ModelError(
            f"{source}: the graph uses ONNX opset {opset}; abkit wraps opset 13 or later "
            "(re-export it, e.g. torch.onnx.export(..., opset_version=17))"
        )
    seq_len = layout.seq_len
    table = np.concatenate([[layout.pad_token], token_of_item]).astype(np.int64)
    inits = [numpy_helper.from_array(table, "abkit_token_table")]
    nodes = [helper.make_node("Gather", ["abkit_token_table", "history"], ["abkit_tokens"])]
    tokens = "abkit_tokens"
    if layout.padding == "right":
        inits += [
            numpy_helper.from_array(np.asarray(0, np.int64), "abkit_zero"),
            numpy_helper.from_array(np.asarray([1], np.int64), "abkit_axis1"),
            numpy_helper.from_array(np.asarray(seq_len, np.int64), "abkit_seq_len"),
            numpy_helper.from_array(np.arange(seq_len, dtype=np.int64)[None, :], "abkit_cols"),
        ]
        nodes += [
            helper.make_node("Greater", ["history", "abkit_zero"], ["abkit_is_item"]),
            helper.make_node("Cast", ["abkit_is_item"], ["abkit_is_item_n"], to=TensorProto.INT64),
            helper.make_node(
                "ReduceSum", ["abkit_is_item_n", "abkit_axis1"], ["abkit_n"], keepdims=1
            ),
            helper.make_node("Sub", ["abkit_seq_len", "abkit_n"], ["abkit_shift"]),
            helper.make_node("Add", ["abkit_cols", "abkit_shift"], ["abkit_shifted"]),
            helper.make_node("Mod", ["abkit_shifted", "abkit_seq_len"], ["abkit_order"]),
            helper.make_node(
                "GatherElements", [tokens, "abkit_order"], ["abkit_right_padded"], axis=1
            ),
        ]
        tokens = "abkit_right_padded"
    elem = {
        "int32": TensorProto.INT32,
        "int64": TensorProto.INT64,
        "float32": TensorProto.FLOAT,
    }[layout.dtype]
    nodes.append(helper.make_node("Cast", [tokens], ["abkit_model_history"], to=elem))
    adapter_graph = helper.make_graph(
        nodes,
        "abkit_adapter",
        [helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", seq_len])],
        [helper.make_tensor_value_info("abkit_model_history", elem, ["batch", seq_len])],
        initializer=inits,
    )
    adapter = helper.make_model(
        adapter_graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="abkit"
    )
    adapter.ir_version = raw.ir_version
    try:
        merged = compose.merge_models(
            adapter,
            raw,
            io_map=[("abkit_model_history", layout.name)],
            outputs=[f"model/{logits_output}"],
            prefix2="model/",
        )
    except Exception as exc:  # onnx raises ValueError / its own checker errors
        raise ModelError(f"{source}: cannot compose the graph ({_first_line(exc)})") from None
    graph = merged.graph
    scores = f"model/{logits_output}"
    graph.initializer.append(
        numpy_helper.from_array(np.asarray(column_of_item, np.int64), "abkit_columns")
    )
    graph.node.append(helper.make_node("Cast", [scores], ["abkit_scores"], to=TensorProto.FLOAT))
    graph.node.append(
        helper.make_node("Gather", ["abkit_scores", "abkit_columns"], ["logits"], axis=1)
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "n_items"])
    )
    try:
        wrapped = add_topk_head(merged).SerializeToString()
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{source}: the wrapped graph is invalid ({_first_line(exc)})") from None

    # the wrapped graph must score exactly as the raw model on the adapted histories
    raw_session = _session(model, source)
    (expected,) = raw_session.run(
        [logits_output], {layout.name: adapt_histories(probe, token_of_item, layout)}
    )
    expected = expected.astype(np.float32)[:, column_of_item]
    session = _session(wrapped, f"{source} (wrapped)")
    (got,) = session.run(
        ["logits"],
        {
            "history": probe.astype(np.int64),
            "k": np.asarray([1], np.int64),
            "exclude": np.zeros((probe.shape[0], column_of_item.size), np.float32),
        },
    )
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-5, equal_nan=True):
        raise ModelError(f"{source}: the wrapped graph disagrees with the raw model")
    return wrapped
