"""Formula cases that mutation runs 3 and 4 (``bench/mutation.py``, ``reports/mutation/SURVIVORS.md``)
found untested, each against an oracle outside archstat's formulas: the tensors and errors PyTorch
itself makes (recorded op by op by a dispatch mode), or arithmetic by hand.

Each test names the mutants it was written for (``file:line``, mutation)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _validated import validated
from test_formula_edges import Call
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from archstat import analyze
from archstat.analyses.receptive_field import receptive_field
from archstat.engine.analyze import analyze_rows
from archstat.errors import ArchstatError
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
    ``(size,) * dims`` -> ``+``); 9 channels are 3*3, not 3+3 (resize.py:60).  The oracle is PyTorch's
    output shape."""
    for module, shape in [(nn.Upsample(scale_factor=3.0), (2, 4, 5)), (nn.PixelShuffle(3), (18, 4, 5)),
                          (nn.Upsample(scale_factor=(3.0, 2.0)), (2, 4, 5)), (nn.Upsample(size=7), (2, 4, 5)),
                          (nn.PixelShuffle(3), (9, 4, 5))]:
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


def test_float64_batch_norm_statistics_are_float64():
    """In training ``native_batch_norm`` of a float64 input returns a float64 mean and inverse std,
    8 bytes each per channel (norm.py:35, ``8`` -> ``9``).  The oracle is what PyTorch returns."""
    model = Call(lambda m, x: F.batch_norm(x, None, None, training=True))
    row = analyze(model, (3, 5, 7), batch=2, dtype=torch.float64).iloc[-1]
    _, mean, invstd = torch.native_batch_norm(torch.randn(2, 3, 5, 7, dtype=torch.float64), None, None, None, None,
                                              True, 0.1, 1e-5)
    assert mean.dtype == torch.float64 and row["work"]["transient_bytes"] == mean.nbytes + invstd.nbytes


@pytest.mark.parametrize("sa,sb", [((3, 4, 5), (2, 3, 5, 6)), ((2, 3, 4, 5), (3, 5, 6)), ((2, 1, 4, 5), (2, 3, 5, 6)),
                                   ((2, 3, 4, 5), (1, 3, 5, 6)), ((1, 4, 5), (3, 5, 6)), ((1, 4, 5), (2, 3, 5, 6))])
def test_matmul_operand_copies_are_the_clones_pytorch_makes(sa: tuple, sb: tuple):
    """``torch.matmul`` of broadcast batches runs ``bmm`` on ``expand(...).reshape(B, r, c)`` of each
    operand: a clone where the broadcast batch dims cannot be merged by a view (a 3-d operand
    against a 4-d one; a size-1 dim broadcast inside the batch).  The row's transient bytes are
    those clones (linear.py:76, ``len >= 3`` -> ``> 3``; :95, the size-1 broadcast test and the
    strides 0 of the broadcast dims: ``(1, 4, 5)`` against ``(2, 3, 5, 6)`` is a view, all batch strides 0)."""
    model = Call(lambda m, x: torch.matmul(x, m.b), b=torch.randn(sb))
    seen = _ops(model, torch.randn(sa))
    row = analyze(model, sa[1:], batch=sa[0]).set_index("op").loc["matmul"]
    assert row["work"]["transient_bytes"] == sum(seen.outputs("clone"))


def test_symbolic_new_zeros_with_sizes_as_arguments():
    """``x.new_zeros(x.size(0), 3)`` in symbolic mode: the sizes are arguments and the first is the
    symbol N (elementwise.py:97, ``is not None`` -> ``is None``).  At N = 2 the closed form is the
    bytes of the tensor PyTorch makes."""
    model = Call(lambda m, x: x.new_zeros(x.size(0), 3))
    out = model(torch.zeros(2, 3, 8, 8))
    row = analyze(model, (3, 8, 8), symbolic=True).iloc[-1]
    n = [s for s in row["act_bytes"].free_symbols if s.name == "N"]
    assert n and row["act_bytes"].subs(n[0], 2) == out.nbytes


def test_masked_fill_out_of_place_writes_a_new_tensor():
    """``x.masked_fill(mask, v)`` returns a new tensor, ``masked_fill_`` writes ``x`` (elementwise.py:106,
    the ``inplace`` default ``False`` -> ``True``).  The oracle is PyTorch's storage pointers."""
    mask = torch.tensor([[True, False, False, True]] * 3)
    for fn, inplace in [(lambda m, x: x.masked_fill(m.mask, 0.0), False), (lambda m, x: x.masked_fill_(m.mask, 0.0), True)]:
        x = torch.randn(2, 3, 4)
        out = fn(Call(fn, mask=mask), x)
        assert (out.data_ptr() == x.data_ptr()) == inplace
        row = analyze(Call(fn, mask=mask), (3, 4), batch=2).set_index("op").loc["masked_fill"]
        assert bool(row["alloc"]) == (not inplace) and row["act_bytes"] == (0 if inplace else out.nbytes)


def test_full_max_keeps_its_input_and_result_for_backward():
    """``torch.max(x)`` over every element: backward spreads the gradient over the maximal elements,
    so autograd saves the input and the result (reduce.py:40, ``("in", 0)`` -> ``("in", 1)``).  The
    oracle is the real run's saved tensors."""
    model = Call(lambda m, x: torch.max(m.fc(x)))
    model.fc = nn.Linear(4, 4)
    df = validated(model, (3, 4), "train")
    row = df.set_index("op").loc["max"]
    assert row["real_saved_bytes"] == 2 * 3 * 4 * 4 + 4 and row["saved_bytes"] == row["real_saved_bytes"]


@pytest.mark.parametrize("op", ["zero_", "fill_"])
def test_zero_and_fill_write_in_place(op: str):
    """``x.zero_()`` and ``x.fill_(v)`` write ``x``'s own storage: no new tensor, no new bytes
    (elementwise.py:106, ``alloc=False`` / ``new_bytes=False`` -> ``True``).  The oracle is PyTorch's
    storage pointer."""
    fn = (lambda m, x: (x * 2).zero_()) if op == "zero_" else (lambda m, x: (x * 2).fill_(1.5))
    y = torch.randn(2, 3, 4) * 2
    assert getattr(y, op)(*([] if op == "zero_" else [1.5])).data_ptr() == y.data_ptr()
    df = analyze(Call(fn), (3, 4), batch=2)
    row = df.iloc[-1]
    assert row["op"] == op.rstrip("_") and not row["alloc"] and row["act_bytes"] == 0
    assert int(df["act_bytes"].sum()) == 2 * 3 * 4 * 4  # the product's tensor, written twice, counted once


LOW_RANK = [  # (product, the buffer, per-sample input, batch): a 1-d or 2-d operand, the other contiguous or transposed
    (lambda m, x: torch.matmul(x, m.w), torch.randn(5, 6), (4, 5), 3),
    (lambda m, x: torch.matmul(m.w, x), torch.randn(5), (3, 5, 6), 2),
    (lambda m, x: torch.matmul(m.w, x), torch.randn(4, 5), (3, 5, 6), 2),
    (lambda m, x: torch.matmul(m.w, x.transpose(-1, -2)), torch.randn(4, 5), (3, 6, 5), 2),
    (lambda m, x: torch.matmul(m.w, x.transpose(-1, -2)), torch.randn(5), (3, 6, 5), 2),
    (lambda m, x: torch.matmul(x.transpose(-1, -2), m.w), torch.randn(5, 4), (3, 5, 6), 2),
]


@pytest.mark.parametrize("case", range(len(LOW_RANK)))
def test_matmul_with_a_low_rank_operand_copies_nothing(case: int):
    """A 1-d or 2-d operand: ``torch.matmul`` folds the batch into ``mm``/``mv`` or expands the small
    operand as a view, and makes no clone, even of a transposed 4-d operand (linear.py:76,
    ``[0, 0]`` -> ``[1, 0]`` / ``[0, 1]``, ``and`` -> ``or``)."""
    fn, w, shape, batch = LOW_RANK[case]
    model = Call(fn, w=w)
    seen = _ops(model, torch.randn(batch, *shape))
    row = analyze(model, shape, batch=batch).set_index("op").loc["matmul"]
    assert row["work"]["transient_bytes"] == sum(seen.outputs("clone")) == 0


def test_pixel_shuffle_needs_channels_divisible_by_the_square():
    """12 channels cannot be shuffled by 3 (3*3 = 9 does not divide 12): an error in PyTorch and in
    archstat (resize.py:60, ``or`` -> ``and``)."""
    with pytest.raises(RuntimeError):
        nn.PixelShuffle(3)(torch.zeros(2, 12, 4, 5))
    with pytest.raises(ArchstatError):
        analyze(nn.Sequential(nn.PixelShuffle(3)), (12, 4, 5), batch=2)


@pytest.mark.parametrize("fn", [lambda m, x: F.pixel_shuffle(x, 3), lambda m, x: F.pixel_shuffle(x, upscale_factor=3),
                                lambda m, x: F.pixel_unshuffle(x, downscale_factor=2)], ids=["positional", "kw", "unshuffle_kw"])
def test_functional_pixel_shuffle_reads_its_factor_by_position_or_name(fn):
    """``F.pixel_shuffle(x, 3)`` and ``F.pixel_shuffle(x, upscale_factor=3)`` (resize.py:80, ``> 1`` ->
    ``>= 1``, ``args[1]`` -> ``args[2]``).  The oracle is PyTorch's output shape."""
    model = Call(fn)
    out = model(torch.zeros(2, 18, 4, 6))
    row = analyze(model, (18, 4, 6), batch=2).iloc[-1]
    assert list(row["out_shape"]) == list(out.shape[1:])


def test_symbolic_upsampling_by_a_fraction_floors_the_product():
    """``nn.Upsample(scale_factor=1.5)`` in symbolic mode: ``floor(1.5 * H)`` (resize.py:26, ``*`` ->
    ``+``).  At H = 8, W = 5 the closed form is PyTorch's output size, 12 x 7."""
    module = nn.Upsample(scale_factor=1.5)
    out = module(torch.zeros(1, 2, 8, 5))
    row = analyze(nn.Sequential(module), (2, 8, 5), symbolic=True).iloc[0]
    h, w = row["out_shape"][-2:]
    values = {s: {"H": 8, "W": 5}[s.name] for s in (h.free_symbols | w.free_symbols)}
    assert [h.subs(values), w.subs(values)] == list(out.shape[-2:]) == [12, 7]


@pytest.mark.xfail(strict=True, reason="found by linear.py:76 'and' -> 'or': matmul_function prices no operand "
                   "copy when one operand is 1-d or 2-d, but PyTorch (eval) clones a >= 3-d operand whose batch "
                   "dims cannot be viewed as one; in training it folds to mm and copies on other strides too")
def test_matmul_clones_a_high_rank_operand_with_unmergeable_batch_against_a_matrix():
    """``w @ x.transpose(1, 2)`` with ``x`` of (N, 3, 2, 5, 6): the batch dims (3, 2) -> (2, 3) cannot be
    merged by a view, so PyTorch clones the 4-d operand (720 bytes at N=1) even against a 2-d ``w``."""
    model = Call(lambda m, x: torch.matmul(m.w, x[0].transpose(0, 1)), w=torch.randn(4, 5))
    seen = _ops(model, torch.randn(1, 3, 2, 5, 6))
    row = analyze(model, (3, 2, 5, 6), batch=1).set_index("op").loc["matmul"]
    assert sum(seen.outputs("clone")) == 720 and row["work"]["transient_bytes"] == 720


def test_masked_fill_with_the_mask_by_name():
    """``x.masked_fill(mask=m, value=v)`` and ``x.masked_fill(m, value=v)`` (elementwise.py:113, ``> 1`` ->
    ``>= 1`` or ``> 2``, ``args[1]`` -> ``args[2]``).  The oracle is PyTorch's result."""
    for fn in (lambda m, x: x.masked_fill(mask=m.mask, value=0.0), lambda m, x: x.masked_fill(m.mask, value=0.0)):
        model = Call(fn, mask=torch.tensor([True, False, True, False]))
        out = model(torch.randn(2, 3, 4))
        row = analyze(model, (3, 4), batch=2).iloc[-1]
        assert list(row["out_shape"]) == list(out.shape[1:]) and row["act_bytes"] == out.nbytes


@pytest.mark.parametrize("fn", [lambda m, x: torch.where(x > 0, x.double(), x), lambda m, x: 1.5 - x.long()],
                         ids=["where_f64_f32", "scalar_first"])
def test_result_dtype_of_where_values_and_a_leading_scalar(fn):
    """``where(c, float64, float32)`` is float64: both values promote, the condition does not
    (elementwise.py:53, ``tensors[1:]`` -> ``[2:]``); ``1.5 - long`` is float32: a scalar in the first
    place promotes too (elementwise.py:55, ``== "where"`` -> ``!=``).  The oracle is PyTorch's dtype."""
    model = Call(fn)
    out = model(torch.randn(2, 3, 4))
    row = analyze(model, (3, 4), batch=2).iloc[-1]
    assert row["act_bytes"] == out.nbytes


LINEAR_INPUTS = [  # what F.linear gets: (per-sample input, view of it); autograd saves a copy or the input
    lambda x: x.transpose(1, 2),  # (N, 6, 4) of a (N, 4, 6): no (rows, in) view, matmul copies it
    lambda x: x[..., :4],  # a slice of the last dim: a view exists
    lambda x: x[:, :, 0],  # a 2-d non-contiguous input (strides 24, 6): mm on it, no copy
    lambda x: x.transpose(1, 2).contiguous(),  # contiguous
]


@pytest.mark.parametrize("case", range(len(LINEAR_INPUTS)))
def test_linear_saves_its_input_or_the_copy_matmul_made(case: int):
    """In training ``F.linear`` keeps for the weight's gradient the (rows, in) copy matmul made of an
    input that has no such view, else the input itself (linear.py:23/24, the copy's conditions and
    size).  The oracle is autograd's saved tensors in the real run."""
    model = Call(lambda m, x: F.linear(LINEAR_INPUTS[case](x), m.fc.weight, m.fc.bias))
    model.fc = nn.Linear(4, 3)
    validated(model, (4, 6), "train")


def test_a_computed_weight_is_saved_a_parameter_is_not():
    """``F.linear(x, w * 2)``: backward keeps the computed weight for the input's gradient; with the
    parameter itself nothing more (linear.py:61, ``type(w) is TensorSpec`` -> ``is not``).  The oracle
    is autograd's saved tensors."""
    for fn in (lambda m, x: F.linear(m.first(x), m.fc.weight * 2), lambda m, x: F.linear(m.first(x), m.fc.weight)):
        model = Call(fn)
        model.first, model.fc = nn.Linear(4, 4), nn.Linear(4, 3)
        validated(model, (5, 4), "train")


@pytest.mark.parametrize("mode,regular", [("reflect", False), ("constant", True)])
def test_functional_pad_keeps_its_mode(mode: str, regular: bool):
    """``F.pad(x, p, mode="reflect")`` mirrors the border, so an edge unit of the conv after it reads
    input pixels twice (a 5x5 window over a border mirrored by 2): its field is not one window.  The oracle is the gradient of an edge unit
    (pad.py:44, ``mode or "constant"`` -> ``and``: reflect read as constant)."""
    model = Call(lambda m, x: m.conv(F.pad(x, (2, 2, 2, 2), mode=mode)))
    model.conv = nn.Conv2d(1, 1, 5)
    x = torch.ones(1, 1, 8, 8, requires_grad=True)
    with torch.no_grad():
        model.conv.weight.fill_(1.0)
    model(x)[0, 0, 0, 0].backward()
    mirrored = bool((x.grad > 1).any())  # a pixel read twice by one unit
    assert mirrored == (not regular)
    rf = receptive_field(analyze_rows(model, (1, 8, 8)))
    assert bool(rf.iloc[-1]["regular"]) == regular
