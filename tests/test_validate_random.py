"""Hypothesis: random CNNs (sequential, residual, concat, channel shuffle, pads, in-place activations)
agree with the real model and both FLOP oracles, per row and per module, in eval and in training
mode; row by row with the live-memory tracker in eval, with saved tensors and backward FLOPs in
training; the printed flops column against an independent oracle per convention."""
import logging
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from _random_nets import random_cnn
from archstat.validation.validate import validate
from oracles.lecture import lecture_costs

logging.getLogger("fvcore").setLevel(logging.ERROR)


@given(random_cnn(), st.sampled_from(["eval", "train"]), st.sampled_from(["lecture", "fvcore", "flopcounter"]))
def test_random_cnn_validates(case, mode, convention):
    net, shape = case
    df = validate(net, shape, batch=2, mode=mode, convention=convention)
    assert df.attrs["agree"], df.attrs["mismatches"]
    # the per-row checks really ran: every supported row was compared, none skipped
    for check in ("shape_ok", "params_ok", "bytes_ok", "macs_ok", "fvcore_ok", "flopcounter_ok"):
        assert df.attrs["checks"][check]["ok"] == len(df), check
    # inference memory is checked row by row in eval mode; saved bytes and backward FLOPs in training
    assert df.attrs["checks"]["live_ok"]["ok"] == (len(df) if mode == "eval" else 0)
    for check in ("saved_ok", "bwd_ok"):
        assert df.attrs["checks"][check]["ok"] == (len(df) if mode == "train" else 0), check
    totals = df.attrs["totals"]
    assert totals["flops_fvcore"][0] == totals["flops_fvcore"][1]
    assert totals["flops_flopcounter"][0] == totals["flops_flopcounter"][1]
    # the printed `flops` column against an oracle that does not share its code: fvcore's and
    # FlopCounterMode's own totals, or the hook-based lecture counter (per call, not only the total)
    if convention == "lecture":
        oracle = Counter(c for _, c in lecture_costs(net, shape, batch=2) if c)
        assert Counter(int(v) for v in df["flops"] if v) == oracle
    else:
        assert int(df["flops"].sum()) == totals[f"flops_{convention}"][1]
