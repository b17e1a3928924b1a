"""Several model inputs (issue 14, item 2): ``--input`` repeated with its own dtype, keyword inputs,
integer inputs filled with valid indices, and every real run feeding all inputs.

The numbers are checked against the real model: validate's per-row checks (shapes, bytes, live
memory, saved tensors, backward FLOPs), FlopCounterMode on the model's own forward, and the
parameter count of the real module.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from _several_inputs_models import VOCAB, ImageTokens, Masked
from archstat.cli import main
from archstat.engine.analyze import analyze, analyze_rows
from archstat.engine.inputs import InputSpec, ModelInputs, example_inputs, parse_input
from archstat.errors import ArchstatError
from archstat.spec import TensorSpec
from archstat.validation.validate import validate

IMAGE, TOKENS = (3, 16, 16), InputSpec((7,), torch.int64, VOCAB)
MODEL = "_several_inputs_models:ImageTokens"
ARGV = ["--input", "3x16x16", "--input", f"7:int64:{VOCAB}"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def real_macs(model, *args, **kwargs) -> int:
    """MACs of the model's own forward on real inputs: FlopCounterMode's count / 2."""
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(*args, **kwargs)
    return fc.get_total_flops() // 2


def tokens(batch: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, 7))


# --- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, spec", [
    ("3x224x224", InputSpec((3, 224, 224))),
    ("77:int64", InputSpec((77,), torch.int64)),
    ("77:int64:1000", InputSpec((77,), torch.int64, 1000)),
    ("16x16:bool:2", InputSpec((16, 16), torch.bool, 2)),
    ("3x8x8:float16", InputSpec((3, 8, 8), torch.float16)),
])
def test_parse_input(text, spec):
    assert parse_input(text) == spec


@pytest.mark.parametrize("text, message", [
    ("3xfoo", "malformed --input"), ("3x4:float99", "unknown dtype 'float99'"), ("3x4:float32:5", "integer and bool"),
    ("7:bool:3", "bool: 1 or 2"), ("7:int64:x", "not an integer"), ("7:int64:0", "must be >= 1"),
    ("1:2:3:4", "malformed --input"), ("3x0", "zero or negative"), ("=16:bool", "keyword input is NAME=SHAPE"),
])
def test_parse_input_refuses(text, message):
    with pytest.raises(ArchstatError, match=message):
        parse_input(text)


def test_integer_inputs_are_valid_indices():
    given = ModelInputs.of(inputs=[IMAGE, TOKENS, InputSpec((5,), torch.int32)])
    specs = ([TensorSpec((64, *IMAGE)), TensorSpec((64, 7), torch.int64), TensorSpec((64, 5), torch.int32)], {})
    (image, toks, plain), _ = example_inputs(given, specs, "cpu", seed=0)
    assert image.dtype == torch.float32 and image.std() > 0.5
    assert toks.dtype == torch.int64 and toks.min() >= 0 and toks.max() < VOCAB and len(toks.unique()) > 1
    assert plain.dtype == torch.int32 and not plain.any()  # no bound: zeros, a valid index anywhere


# --- the Python API ----------------------------------------------------------------------------

def test_inputs_as_shapes_specs_or_meta_tensors_agree():
    model = ImageTokens()
    ref = analyze(model, inputs=[IMAGE, TOKENS], batch=2)
    as_specs = analyze(model, inputs=[TensorSpec((2, *IMAGE)), TensorSpec((2, 7), torch.int64)])
    meta = analyze(model, inputs=[torch.empty(2, *IMAGE, device="meta"), torch.empty(2, 7, dtype=torch.long,
                                                                                      device="meta")])
    for df in (as_specs, meta):
        assert df.attrs["batch"] == 2 and df.attrs["total"] == ref.attrs["total"]
        assert list(df["out_shape"]) == list(ref["out_shape"])
    assert ref.attrs["total"]["macs"] == real_macs(model, torch.randn(2, *IMAGE), tokens(2))


def test_one_shape_is_one_input_as_before():
    model = ImageTokens()
    with pytest.raises(ArchstatError, match="needs an argument 'tokens'"):
        analyze(model, IMAGE)
    masked = Masked()
    one = analyze(masked, (6, 12), batch=3, kwargs={"mask": InputSpec((6,), torch.bool)})
    two = analyze(masked, inputs=[(6, 12)], batch=3, kwargs={"mask": InputSpec((6,), torch.bool)})
    assert one.attrs["input"] == [6, 12] and one.attrs["total"] == two.attrs["total"]


def test_batch_first_inputs_must_agree():
    with pytest.raises(ArchstatError, match="disagree on the batch"):
        analyze(ImageTokens(), inputs=[TensorSpec((2, *IMAGE)), TensorSpec((3, 7), torch.int64)])
    with pytest.raises(ArchstatError, match="batch=4"):
        analyze(ImageTokens(), inputs=[TensorSpec((2, *IMAGE)), TOKENS], batch=4)
    with pytest.raises(ArchstatError, match="has no argument 'nothere'"):
        analyze(ImageTokens(), inputs=[IMAGE, TOKENS], kwargs={"nothere": (3,)})


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_validate_two_inputs(mode):
    df = validate(ImageTokens(), inputs=[IMAGE, TOKENS], batch=2, mode=mode)
    assert df.attrs["agree"], df.attrs["mismatches"]
    checks = df.attrs["checks"]
    wanted = ("shape_ok", "bytes_ok", "fvcore_ok") + (("saved_ok", "bwd_ok") if mode == "train" else ("live_ok",))
    assert all(checks[c]["ok"] == len(df) and checks[c]["skipped"] == 0 for c in wanted), checks
    # the token input is read (and, in train, saved) by the gather: its int64 bytes are counted
    gather = df[df["op"] == "getitem"].iloc[0]
    assert gather["in_shapes"] == [[7]] and gather["act_bytes"] == 2 * 7 * 8 * 4


def test_keyword_mask_input_validates():
    mask = InputSpec((6,), torch.bool, 2)  # random bits: some positions masked
    for mode in ("eval", "train"):
        df = validate(Masked(), (6, 12), batch=3, mode=mode, kwargs={"mask": mask})
        assert df.attrs["agree"], df.attrs["mismatches"]
    real = torch.tensor([[True] * 6] * 3)
    assert analyze(Masked(), (6, 12), batch=3, kwargs={"mask": real}).attrs["total"]["macs"] == \
        real_macs(Masked(), torch.randn(3, 6, 12), mask=real)


def test_example_tensor_values_are_fed():
    """An example tensor keeps its values in the real run: out-of-range tokens make it fail, in one line."""
    bad = torch.full((2, 7), VOCAB + 5)
    with pytest.raises(ArchstatError, match="the real model fails at"):
        validate(ImageTokens(), inputs=[torch.randn(2, *IMAGE), bad])


def test_saved_inputs_are_counted_apart():
    """Both inputs saved for backward (the conv saves the image, the gather its int64 tokens): each
    storage is its own key, so the estimate equals saved_tensors_hooks."""
    from archstat.analyses.memory import saved_per_row

    rows = analyze_rows(ImageTokens(), inputs=[IMAGE, TOKENS], batch=2, mode="train")
    storages = {k: v for per_row in saved_per_row(rows)["saved_storages"] for k, v in per_row.items()}
    assert storages[("input", 0)] == 2 * 3 * 16 * 16 * 4 and storages[("input", 1)] == 2 * 7 * 8


# --- the command line --------------------------------------------------------------------------

def test_table_two_inputs(capsys):
    code, out, _ = run_cli(capsys, "table", MODEL, *ARGV, "--batch", "2", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["input"] == [3, 16, 16]
    assert [(d["shape"], d["dtype"], d["high"]) for d in doc["inputs"]] == [([3, 16, 16], None, None),
                                                                           ([7], "int64", VOCAB)]
    model = ImageTokens()
    assert doc["total"]["macs"] == real_macs(model, torch.randn(2, *IMAGE), tokens(2))
    assert doc["total"]["params"] == sum(p.numel() for p in model.parameters())
    code, out, _ = run_cli(capsys, "table", MODEL, *ARGV)
    assert code == 0 and f"inputs 3x16x16, 7:int64:{VOCAB}  batch 1" in out.splitlines()[0]


def test_table_training_two_inputs(capsys):
    code, out, _ = run_cli(capsys, "table", MODEL, *ARGV, "--training", "--batch", "2", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    # the estimate's saved bytes equal what autograd saves on the real model fed both inputs
    truth = validate(ImageTokens(), inputs=[IMAGE, TOKENS], batch=2, mode="train").attrs["totals"]["training_saved"]
    assert truth[0] == truth[1] == sum(r["saved_bytes"] for r in doc["layers"])


def test_validate_cli_train(capsys):
    code, out, _ = run_cli(capsys, "validate", MODEL, *ARGV, "--mode", "train", "--batch", "2", "--quiet")
    assert code == 0 and "AGREE" in out and "saved 8/8, bwd 8/8" in out
    code, out, _ = run_cli(capsys, "validate", "_several_inputs_models:Masked", "--input", "6x12",
                           "--input", "mask=6:bool:2", "--quiet", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["agree"] and doc["inputs"][1]["name"] == "mask"


def test_compare_two_inputs(capsys):
    code, out, _ = run_cli(capsys, "compare", MODEL, *ARGV, "--format", "json")
    (row,) = json.loads(out)["models"]
    model = ImageTokens()
    assert code == 0 and row["input"] == f"3x16x16, 7:int64:{VOCAB}"
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert row["macs"] == real_macs(model, torch.randn(1, *IMAGE), tokens(1))
    assert row["train_bytes_1"] is not None and row["rf"] is None  # receptive field: one-input models only


def test_profile_cpu_two_inputs(capsys):
    code, out, _ = run_cli(capsys, "profile", MODEL, *ARGV, "--device", "cpu", "--no-roofline", "--repeat", "1",
                           "--warmup", "0", "--layer-repeat", "1", "--train", "--quiet", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["context"]["inputs"] == f"3x16x16, 7:int64:{VOCAB}"
    forward, train = doc["runs"]
    model = ImageTokens()
    weights = sum(p.numel() * 4 for p in model.parameters())
    # CPU peak: weights + both inputs + live activations of a real eager forward
    assert forward["peak_mem_bytes"] >= weights + 3 * 16 * 16 * 4 + 7 * 8
    assert forward["median_s"] > 0 and train["median_s"] > 0
    assert len(doc["layers"]) == 8 and all(r["time_s"] > 0 for r in doc["layers"])


@pytest.mark.parametrize("argv, message", [
    (["table", MODEL, "--input", "3xfoo"], "malformed --input '3xfoo'"),
    (["table", MODEL, "--input", "3x16x16", "--input", "3x4:float99"], "unknown dtype 'float99'"),
    (["table", MODEL, "--input", "3x16x16"], "needs an argument 'tokens'"),
    (["validate", MODEL, "--input", "3x16x16"], "needs an argument 'tokens'"),
    (["profile", MODEL, "--input", "3x16x16", "--device", "cpu", "--no-roofline"], "needs an argument 'tokens'"),
    (["table", MODEL, *ARGV, "--input", "5"], "takes 2 input(s), 3 were given"),
    (["table", MODEL, *ARGV, "--input", "bad-name=5"], "keyword input is NAME=SHAPE"),
    (["table", MODEL, *ARGV, "--receptive-field"], "one input; this one takes 2"),
])
def test_bad_inputs_one_line_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and message in lines[0], err


def test_html_page_names_every_input(tmp_path, capsys):
    out = tmp_path / "two.html"
    code, _, err = run_cli(capsys, "html", MODEL, *ARGV, "--out", str(out))
    page = out.read_text(encoding="utf-8")
    assert code == 0, err
    assert f"inputs 3x16x16, 7:int64:{VOCAB}" in page
    assert "one input; this one takes 2" in page  # the receptive field refused with its reason, not drawn


def test_optional_arguments_left_out_are_traced_at_their_defaults():
    """``scale=None`` and ``double=False`` not given: the table has the conv alone, as the real call runs
    (traced as placeholders, ``if scale is not None`` took the multiply and ``None.float()`` failed);
    given, the branches are there; ``validate`` agrees either way."""
    from _several_inputs_models import OptionalScale

    bare = analyze(OptionalScale(), (3, 8, 8), batch=2)
    assert list(bare["op"]) == ["Conv2d"] and not bare.attrs["partial"]
    assert bare.attrs["total"]["macs"] == real_macs(OptionalScale(), torch.randn(2, 3, 8, 8))
    given = analyze(OptionalScale(), (3, 8, 8), batch=2, kwargs={"scale": (4, 8, 8)})
    assert list(given["op"])[0] == "Conv2d" and "mul" in list(given["op"]) and "add" not in list(given["op"])
    for mode in ("eval", "train"):
        df = validate(OptionalScale(), (3, 8, 8), batch=2, mode=mode)
        assert df.attrs["agree"] and len(df) == 1, df.attrs["mismatches"]


def test_named_outputs_of_ops_without_a_formula_are_read_by_field():
    """``x.sort(-1).values``, ``topk(...).values`` and ``linalg.eigh(...).eigenvalues`` on ops without a
    formula: flagged, and the next op sees the named part's shape (the meta run's named tuple keeps its
    field names)."""
    from _several_inputs_models import SortValues

    df = analyze(SortValues(), (3, 8, 8), batch=2)
    assert df.attrs["partial"]
    assert {u.split(" ")[0] for u in df.attrs["unsupported"]} == {"sort", "topk", "linalg_eigh"}
    assert df[df["op"] == "transpose"].iloc[0]["in_shapes"] == [[4, 8, 2]]
    # eigh's eigenvalues (N x 4 x 2), not its eigenvectors (N x 4 x 2 x 2): the field, not the position
    assert df[df["op"] == "relu"].iloc[0]["in_shapes"] == [[4, 2]]


def test_only_fx_guards_on_fixed_arguments_are_dropped():
    """``trace_graph`` with fixed defaults removes fx's checks on those arguments (``_assert_is_none``,
    ``_assert(flag == False)``), never the model's own assertion nor the ops that feed it."""
    from torch import nn

    from archstat.engine.trace import trace_graph

    class OwnCheck(nn.Module):
        def forward(self, x, mask=None, flag: bool = False):
            torch._assert((x >= 0).all(), "inputs must be non-negative")
            return x if mask is None and not flag else x * 2

    graph = trace_graph(OwnCheck(), {"mask": None, "flag": False})
    calls = [getattr(n.target, "__name__", str(n.target)) for n in graph.nodes if n.op in ("call_function", "call_method")]
    assert calls == ["ge", "all", "_assert"]
    assert [n.target for n in graph.nodes if n.op == "placeholder"] == ["x", "mask", "flag"]
