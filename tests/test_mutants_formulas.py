"""Formula cases that mutation runs 3 and 4 (``bench/mutation.py``, ``reports/mutation/SURVIVORS.md``)
found untested, each against an oracle outside archstat's formulas: the tensors and errors PyTorch
itself makes (recorded op by op by a dispatch mode), or arithmetic by hand.

Each test names the mutants it was written for (``file:line``, mutation)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_formula_edges import Call
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from archstat import analyze
from archstat.formulas import FUNCTION_FORMULAS, ShapeError
from archstat.formulas.pad import padded_shape
from archstat.spec import TensorSpec


class Written(TorchDispatchMode):
    """Every aten op the mode sees, with the bytes of each tensor it returns: ``(op name, [bytes])``."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, list[int]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append((func.overloadpacket.__name__,
                         [t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]))
        return out

    def outputs(self, *names: str) -> list[int]:
        """Bytes of every tensor returned by an op of one of ``names`` (all its outputs)."""
        return [b for op, sizes in self.ops if op in names for b in sizes]


def _ops(model: nn.Module, x: torch.Tensor) -> Written:
    with torch.no_grad(), Written() as mode:
        model(x)
    return mode


INSTANCE_NORMS = [  # (module, per-sample shape, batch, mode): N != C, so that N*C and C*C differ
    (nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (3, 4, 5), 2, "train"),
    (nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (3, 4, 5), 2, "eval"),
    (nn.InstanceNorm2d(3, affine=True), (3, 4, 5), 2, "eval"),
    (nn.InstanceNorm2d(3), (3, 4, 5), 4, "eval"),
    (nn.InstanceNorm1d(3, affine=True, track_running_stats=True), (5,), 3, "train"),  # unbatched (C, L)
    (nn.InstanceNorm1d(3), (5,), 3, "eval"),
    (nn.InstanceNorm1d(3, affine=True), (3, 5), 2, "eval"),  # batched (N, C, L)
]


@pytest.mark.parametrize("case", range(len(INSTANCE_NORMS)))
def test_instance_norm_temporaries_are_the_tensors_pytorch_makes(case: int):
    """``at::instance_norm`` repeats the affine weight and bias and the running stats once per sample
    (``repeat``) and runs batch norm on the input viewed as ``(1, N*C, ...)``, which returns a mean
    and an inverse std per (sample, channel) when it uses the input's statistics.  The row's
    transient bytes are those tensors, as PyTorch writes them (norm.py:99, ``> 2`` -> ``>= 2`` or
    ``> 3``, ``x.shape[0]`` -> ``x.shape[1]``; :101, :102 ``+`` -> ``-``)."""
    module, shape, batch, mode = INSTANCE_NORMS[case]
    module.train(mode == "train")
    seen = _ops(module, torch.randn(batch, *shape))
    made = sum(seen.outputs("repeat")) + sum(seen.outputs("native_batch_norm")[1:])
    row = analyze(nn.Sequential(module), shape, batch=batch, mode=mode).iloc[0]
    assert made > 0 and row["work"]["transient_bytes"] == made


def test_instance_norm_of_a_transposed_input_copies_it_first():
    """A non-contiguous input is cloned before the view to ``(1, N*C, H, W)`` (norm.py:102)."""
    model = Call(lambda m, x: m.norm(x.transpose(2, 3)))
    model.norm = nn.InstanceNorm2d(3, affine=True)
    seen = _ops(model, torch.randn(2, 3, 5, 4))
    made = sum(seen.outputs("repeat", "clone")) + sum(seen.outputs("native_batch_norm")[1:])
    row = analyze(model, (3, 5, 4), batch=2).set_index("op").loc["InstanceNorm2d"]
    assert sum(seen.outputs("clone")) == 2 * 3 * 5 * 4 * 4 and row["work"]["transient_bytes"] == made


def test_functional_conv_with_a_wrong_rank_names_its_op():
    """``F.conv2d`` on a 5-d input fails in PyTorch and in archstat, whose one-line error names
    ``conv2d``, the op called (conv.py:97, ``len(w.shape) - 2`` -> ``+ 2``: "conv6d")."""
    with pytest.raises(RuntimeError, match="conv2d"):
        F.conv2d(torch.zeros(1, 2, 3, 8, 8), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ShapeError, match="conv2d"):
        FUNCTION_FORMULAS["conv2d"]((TensorSpec((1, 2, 3, 8, 8)), TensorSpec((4, 3, 3, 3))), {})


def test_functional_conv_without_padding_pads_nothing():
    """``F.conv2d(x, w)`` with no padding argument: PyTorch's output size, 8 - 3 + 1 (conv.py:99,
    default ``0`` -> ``1``)."""
    model = Call(lambda m, x: F.conv2d(x, m.w, None, 1), w=torch.zeros(4, 3, 3, 3))
    out = model(torch.zeros(2, 3, 8, 9))
    row = analyze(model, (3, 8, 9), batch=2).iloc[-1]
    assert list(row["out_shape"]) == list(out.shape[1:]) == [4, 6, 7]


def test_max_pool_with_indices_called_directly_returns_both():
    """``F.max_pool2d_with_indices(x, 2)`` returns values and int64 indices without any
    ``return_indices`` argument (pool.py:93, ``or`` -> ``and``): the row's output is both, and nothing
    is thrown away.  The oracle is what PyTorch returns."""
    model = Call(lambda m, x: F.max_pool2d_with_indices(x, 2))
    values, indices = model(torch.zeros(2, 3, 8, 6))
    row = analyze(model, (3, 8, 6), batch=2).set_index("op").loc["max_pool2d_with_indices"]
    assert indices.dtype == torch.int64 and row["act_bytes"] == values.nbytes + indices.nbytes
    assert row["work"]["transient_bytes"] == 0


def test_linear_on_a_viewable_strided_input_makes_no_copy():
    """A non-contiguous 3-d input that can be viewed as ``(rows, in)`` (a slice of the last dim) runs
    as one matmul on the view: without a bias PyTorch makes no temporary at all, with one the
    product and the output coexist while the bias is added (linear.py:39, ``else 0`` -> ``else 1``,
    ``x.shape[-1]`` -> ``x.shape[-2]``)."""
    for bias in (False, True):
        model = Call(lambda m, x: m.fc(x[..., :4]))
        model.fc = nn.Linear(4, 5, bias=bias)
        seen = _ops(model, torch.randn(2, 3, 8))
        temporaries = [b for op, sizes in seen.ops if op not in ("slice", "view", "t", "_unsafe_view", "expand")
                       for b in sizes][:-1]  # every tensor written but the output (the last one)
        assert "clone" not in [op for op, _ in seen.ops]
        row = analyze(model, (3, 8), batch=2).set_index("op").loc["Linear"]
        assert row["work"]["transient_bytes"] == sum(temporaries) == (2 * 3 * 5 * 4 if bias else 0)


def test_integer_upsampling_and_pixel_shuffle_multiply_sizes():
    """``nn.Upsample(scale_factor=3.0)`` and ``pixel_shuffle(3)`` multiply the height and width by 3
    (resize.py:36 and :62, ``*`` -> ``+``; at a size of 2 and a factor of 2 the two agree, so the
    sizes here are not 2); ``nn.Upsample(size=7)`` makes every spatial dim 7 (resize.py:33,
    ``(size,) * dims`` -> ``+``).  The oracle is PyTorch's output shape."""
    for module, shape in [(nn.Upsample(scale_factor=3.0), (2, 4, 5)), (nn.PixelShuffle(3), (18, 4, 5)),
                          (nn.Upsample(scale_factor=(3.0, 2.0)), (2, 4, 5)), (nn.Upsample(size=7), (2, 4, 5))]:
        out = module(torch.zeros(2, *shape))
        row = analyze(nn.Sequential(module), shape, batch=2).iloc[0]
        assert list(row["out_shape"]) == list(out.shape[1:]), module


@pytest.mark.parametrize("shape,pad", [((2, 3), (1,)), ((2, 3), (1, 2, 3)), ((4,), (1, 1, 1, 1)),
                                       ((2, 3), (1, 1, 1, 1, 1, 1)), ((2, 3, 4), (1, 1, 1, 1, 1, 1, 1, 1))])
def test_a_pad_pytorch_refuses_is_refused(shape: tuple, pad: tuple):
    """An odd number of pad values, or pairs for more dims than the tensor has, is an error in
    ``F.pad`` and in archstat (pad.py:23, ``or`` -> ``and``, ``2`` -> ``3``)."""
    with pytest.raises((RuntimeError, ValueError)):
        F.pad(torch.zeros(shape), pad)
    with pytest.raises(ShapeError):
        padded_shape(shape, pad)


@pytest.mark.parametrize("shape,pad", [((2, 3), (1, 1, 1, 1)), ((2, 3, 4), (1, 1, 1, 1, 1, 1)), ((4,), (2, 1))])
def test_a_pad_of_pairs_for_each_dim_is_legal(shape: tuple, pad: tuple):
    """Pairs for every dim, 2 to 6 values (pad.py:23, ``% 2`` -> ``% 3``, ``// 2`` -> ``// 3``)."""
    assert padded_shape(shape, pad) == tuple(F.pad(torch.zeros(shape), pad).shape)


def test_local_response_norm_takes_3d_input_as_pytorch():
    """LocalResponseNorm runs on ``(N, C, L)`` (norm.py:112, ranks ``3`` -> ``4``)."""
    module = nn.LocalResponseNorm(3)
    out = module(torch.randn(2, 4, 9))
    row = analyze(nn.Sequential(module), (4, 9), batch=2).iloc[0]
    assert list(row["out_shape"]) == list(out.shape[1:])
