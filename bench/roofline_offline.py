"""Re-predict the per-layer frames a roofline run stored, with the time model as the code has it now.

    python bench/roofline_offline.py DUMP [DUMP ...] [--pace] [--no-warm] [--no-after-bn] [--no-after-bn-relu] [--no-weights]
        [--no-evicted] [--no-cold-levels] [--no-bn-warm-code] [--flushed FAMILY] [--families] [--rounds K] [--fastest] [--drop-grid-part PART]
        [--calibration-from DUMP2]

``DUMP``: a folder that ``bench/roofline_accuracy.py --dump DUMP`` wrote (one ``MODEL_bBATCH.pkl`` frame per
model and batch, and ``calibration.json``).  Each frame's measured times stay as they were; the time model
is fitted again on that run's calibration, without the grid points equal to one of the model's layers (as
the bench does), and every row predicted again.  Prints the bench's columns per model and, per folder,
how many rows meet each of issue 13's four targets and the mean of the medians
(``roofline_accuracy.targets_line``), so that a change to the model can be judged on several runs'
measurements without measuring again (and without a slow minute of the host deciding it).  ``--pace``
re-reads the calibration at the pace the run's rounds were read at (per probe the median of the
rounds' readings; with ``--fastest`` the fastest round's: ``rounds_pace``, ``host_pace``): within a run
tried on 2026-12-01 and not adopted; across runs (``--calibration-from DUMP2``: each frame predicted from
another run's calibration, as ``profile``'s cache hands one over from another hour of the host) it is
what ``profile`` does with the calibration it loads (docs/measured.md; runs from before the probes have
no pace).  ``--no-warm`` switches the
operands-in-private-caches rule off (``private_cache_bytes`` = 0; every rule that needs the back-to-back
fit goes with it: the BatchNorm and ReLU after a conv, the residual adds, ``t_weights``), ``--no-weights``
``t_weights`` alone (the copy family's back-to-back times dropped: a copy row's warm price goes too), ``--no-after-bn`` the BatchNorm-after-a-conv
rule (the calibration's ``AFTER_BN`` probes dropped, and with them the ReLU-after-it rule), ``--no-after-bn-relu``
the ReLU-after-such-a-BatchNorm rule alone (``AFTER_BN_RELU`` dropped), ``--no-evicted`` prices convs from their
back-to-back benchmarks and concats from their flushed ones (every ``EVICTED`` dropped; a GRID_VERSION 10
calibration's BatchNorm and ReLU probes after convs stay as measured, from the pass state), ``--flushed
concat`` prices concats from their flushed benchmarks (their ``EVICTED`` dropped: GRID_VERSION 17),
``--private-cache-bytes N`` supplies the
L2 size to runs calibrated before the rule recorded it; ``--families`` adds the median signed error per
family; ``--rounds K`` judges the run as if it had measured only its first ``K`` rounds, after its first
``K`` calibration passes; each layer, the whole model and each point is the median of the rounds and
passes read (all of them without ``--rounds``), as the bench reads them, or their fastest with
``--fastest`` (the bench before 2026-12-01 07:55 UTC: figures of the runs before it were read so).  Runs
dumped before the per-round columns are read as stored (their fastest), calibration and frames alike;
each folder's line says which reading it got;
``--drop-grid-part pointwise`` leaves out the benchmarks a reverted grid (GRID_VERSION 15) added to the
three runs that measured it; ``global_head`` and ``global_plane`` (GRID_VERSION 18) the global pools
over a CNN head's planes and the random draw's other global pools, each judged without the other (on
a GRID_VERSION 18 dump only: from 19 on the grid has no ``global_plane`` part, and dropping the heads
leaves global pooling the family's floor and the pools onto a grid).  The frames are the bench's own pickles: load only folders you wrote.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
from typing import Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

from roofline_accuracy import (PACE_ROUNDS, ROUND_PREFIX, WHOLE_ROUND_PREFIX, across, held_out_model,  # noqa: E402
                               layer_signatures, targets_line)

from archstat.commands._common import positive_int  # noqa: E402
from archstat.profiling.host_pace import pace_level  # noqa: E402
from archstat.profiling.microbench import GRID_PART, IN_A_PASS, combine  # noqa: E402

from archstat.profiling.op_families import AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM, COLD_LEVELS, EVICTED  # noqa: E402
from archstat.profiling.roofline import relative_error, roofline_summary  # noqa: E402
from archstat.profiling.time_model import MODEL_COLUMNS  # noqa: E402


def round_count(frame: pd.DataFrame) -> int:
    """How many rounds a dumped frame kept per-round columns of (0: dumped before them)."""
    return sum(1 for c in frame.columns if str(c).startswith(ROUND_PREFIX))


def first_rounds(frame: pd.DataFrame, rounds: int, fastest: bool = False) -> pd.DataFrame:
    """The frame as a run of ``rounds`` rounds would have measured it: each layer's time, and the whole
    model's, the median of the first ``rounds`` rounds' (the columns ``combined_rounds`` dumps), or their
    least with ``fastest``."""
    cols = [f"{ROUND_PREFIX}{k + 1}" for k in range(rounds)]
    whole = [f"{WHOLE_ROUND_PREFIX}{k + 1}" for k in range(rounds)]
    missing = [c for c in cols + whole if c not in frame.columns]
    if missing:
        raise SystemExit(f"error: this frame has no {missing[0]} (dumped before per-round columns, or fewer rounds)")
    return frame.assign(time_s=across(frame[cols], fastest), whole_model_s=across(frame[whole], fastest))


def first_passes(cal: dict, passes: int, fastest: bool = False) -> dict:
    """The calibration as a run of ``passes`` rounds would have had it: each point the median of the first
    ``passes`` passes over the grid, or their fastest with ``fastest`` (``microbench.combine``, as the
    bench does)."""
    if len(cal.get("passes") or []) < passes:
        raise SystemExit(f"error: this calibration kept {len(cal.get('passes') or [])} passes, not {passes}")
    return {**cal, "points": combine(cal["passes"][:passes], fastest)}


def rounds_pace(paces: list[Optional[dict[str, float]]], fastest: bool = False) -> Optional[dict[str, float]]:
    """The pace the rounds' layers were read at, at which ``--pace`` re-reads the calibration: per probe
    the median of the rounds' readings, as the layers are read, or with ``fastest`` the pace of the fastest
    round (``host_pace.pace_level``; tried when each layer kept its fastest round)."""
    known = [p for p in paces if p]
    if not known:
        return None
    if fastest:
        return min(known, key=pace_level)
    return {k: statistics.median(p[k] for p in known) for k in known[0] if all(k in p for p in known)}


def repredict(frame: pd.DataFrame, cal: dict, batch: int, itemsize: int = 4, rounds: Optional[int] = None,
              use_pace: bool = False, fastest: bool = False) -> dict:
    """The bench's summary of one stored frame, predicted again from the calibration ``cal``; with
    ``use_pace``, re-read at the pace of its (first ``rounds``) rounds (``rounds_pace``, ``host_pace``;
    frames dumped before the pace probes have none, and are predicted as measured)."""
    rows = frame.drop(columns=[c for c in [*MODEL_COLUMNS, "error"] if c in frame.columns])
    paces = list(frame.attrs.get(PACE_ROUNDS) or [])[:rounds]
    tm, _ = held_out_model(cal, layer_signatures(rows, batch), rounds_pace(paces, fastest) if use_pace else None)
    pred = tm.predict(rows, batch, itemsize)
    out = rows.join(pred)
    out["error"] = [relative_error(p, m) for p, m in zip(out["predicted_s"], out["time_s"])]
    summary = roofline_summary(out)
    whole = float(frame["whole_model_s"].iloc[0])
    summary["predicted_sum_ratio"] = summary["predicted_sum_s"] / whole
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dumps", nargs="+", help="folders written by bench/roofline_accuracy.py --dump")
    ap.add_argument("--no-warm", action="store_true", help="price every memory-bound op from the flushed benchmarks "
                    "(every rule that needs the back-to-back fit is off then too: the BatchNorm and ReLU after a "
                    "conv, the residual adds, t_weights)")
    ap.add_argument("--no-after-bn", action="store_true", help="drop the calibration's BatchNorm successor probes "
                    "(a BatchNorm after a conv priced as before them)")
    ap.add_argument("--no-after-bn-relu", action="store_true", help="drop the calibration's probes of the ReLU after "
                    "that BatchNorm (such a ReLU priced as before them)")
    ap.add_argument("--no-weights", action="store_true", help="no t_weights (a conv's weights priced as in its "
                    "back-to-back benchmark)")
    ap.add_argument("--no-evicted", action="store_true", help="price convs from their back-to-back benchmarks, not "
                    "from those timed with the private caches refilled (the calibration's EVICTED times dropped; "
                    "the BatchNorm and ReLU probes after convs stay as measured)")
    ap.add_argument("--flushed", action="append", default=[], choices=IN_A_PASS,
                    help="price FAMILY (concat) from its flushed benchmarks, not from those timed as in a pass "
                         "(its points' EVICTED dropped)")
    ap.add_argument("--no-bn-warm-code", action="store_true", help="drop the BatchNorm probes after convs timed with "
                    "the BatchNorm's code warm (GRID_VERSION 23): every BatchNorm after a conv priced from the pass state")
    ap.add_argument("--no-cold-levels", action="store_true", help="drop the small memory benchmarks' times after "
                    "flushes of 256 MiB and to DRAM (GRID_VERSION 22): every cold start as at the grid's 64 MiB flush")
    ap.add_argument("--pace", action="store_true", help="the calibration re-read at the pace the model was measured "
                    "at (host_pace: every timing times g(now) / g(then); the rounds' median pace, the fastest round's "
                    "with --fastest): within a run not adopted; with --calibration-from what profile does with a "
                    "cached calibration (docs/measured.md)")
    ap.add_argument("--families", action="store_true", help="the median signed error per family as well")
    ap.add_argument("--private-cache-bytes", type=int, help="the L2 size to assume where the run's calibration "
                    "does not record one (runs before the rule existed)")
    ap.add_argument("--rounds", type=positive_int, help="as if the run had measured only its first ROUNDS rounds, after as "
                    "many calibration passes (runs dumped with per-round columns)")
    ap.add_argument("--fastest", action="store_true", help="each layer, the whole model and each calibration point "
                    "the fastest of the rounds and passes read, not their median (the bench before 07:55 UTC on "
                    "2026-12-01)")
    ap.add_argument("--drop-grid-part", action="append", default=[], metavar="PART",
                    help="leave out the calibration's benchmarks tagged grid_part=PART: the runs of 00:40-01:06 UTC "
                         "on 2026-12-01 were calibrated with 16 pointwise convs (GRID_VERSION 15, reverted); "
                         "--drop-grid-part pointwise fits them as the grid is now; GRID_VERSION 18 tags its global "
                         "pools global_head (a CNN head's planes) and global_plane (the random draw's)")
    ap.add_argument("--calibration-from", type=pathlib.Path, metavar="DUMP2",
                    help="predict each DUMP's frames from DUMP2's calibration (another run's: a calibration from "
                         "another hour of the host, as profile's cache hands it; with --pace re-read at DUMP's pace)")
    a = ap.parse_args()
    for dump in map(pathlib.Path, a.dumps):
        cal = json.loads(((a.calibration_from or dump) / "calibration.json").read_text())
        frames = {path: pd.read_pickle(path) for path in sorted(dump.glob("*_b*.pkl"))}
        # re-combined only where the frames kept their rounds too: one reading for both sides
        per_round = a.rounds is not None or any(round_count(f) for f in frames.values())
        if per_round and (a.rounds is not None or cal.get("passes")):  # a cached calibration has no passes
            cal = first_passes(cal, a.rounds or len(cal["passes"]), a.fastest)
        if a.drop_grid_part:
            cal["points"] = [p for p in cal["points"] if p.get(GRID_PART) not in a.drop_grid_part]
        cal["state"] = dict(cal.get("state") or {})
        if a.private_cache_bytes and not cal["state"].get("private_cache_bytes"):
            cal["state"]["private_cache_bytes"] = a.private_cache_bytes
        if a.no_warm:
            cal["state"]["private_cache_bytes"] = 0
        dropped = (({AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM} if a.no_after_bn else set()) | ({AFTER_BN_RELU} if a.no_after_bn_relu else set())
                   | ({EVICTED} if a.no_evicted else set()) | ({COLD_LEVELS} if a.no_cold_levels else set())
                   | ({AFTER_BN_WARM} if a.no_bn_warm_code else set()))
        cal["points"] = [{k: v for k, v in p.items() if k not in dropped
                          and not (k == EVICTED and p["family"] in a.flushed)} for p in cal["points"]]
        if a.no_weights:  # t_weights reads the copy family's back-to-back fit (so would a copy row's warm price)
            cal["points"] = [{k: v for k, v in p.items() if not (k == "hot_s" and p["family"] == "copy")}
                             for p in cal["points"]]
        rows = []
        reading = ("the fastest" if a.fastest else "the median") + " of the rounds and passes" if per_round else \
            "as stored (the fastest of the rounds and passes: dumped before per-round columns)"
        print(f"{dump}: {reading}")
        for path, frame in frames.items():
            name, batch = path.stem.rsplit("_b", 1)
            if per_round:  # every round without --rounds
                try:
                    frame = first_rounds(frame, a.rounds or round_count(frame), a.fastest)
                except SystemExit as exc:  # a row the run's deadline left short of rounds: said, skipped
                    print(f"  {name:14s} b{batch:<3s} skipped: {exc}")
                    continue
            r = repredict(frame, cal, int(batch), rounds=a.rounds, use_pace=a.pace, fastest=a.fastest)
            rows.append({**r, "model": name, "batch": int(batch)})
            line = (f"  {name:14s} b{batch:<3s} median |err| {r['median_abs_error']:.1%}  naive / calibrated "
                    f"{r['naive_median_abs_error'] / r['median_abs_error']:.1f}x  Spearman {r['spearman']:.3f}  "
                    f"sum / whole {r['predicted_sum_ratio']:.3f}")
            if a.families:
                line += "  " + ", ".join(f"{f} {v:+.0%}" for f, v in r.get("median_error_by_family", {}).items())
            print(line)
        print(f"  {targets_line(rows)}")


if __name__ == "__main__":
    main()
