"""The CPU's caches read from a sysfs tree, and the calibration's flushes sized from them."""
from __future__ import annotations

import os
import pathlib

import pytest
import torch
from torch import nn

from archstat.profiling import microbench
from archstat.profiling.cpu_caches import data_caches, last_level_cache_bytes, parse_size, private_cache_bytes
from archstat.profiling.microbench import (COLD_LEVEL_BYTES, COLD_LEVEL_REPEAT, DRAM_FLUSH_MAX_BYTES, FLUSH_BYTES,
                                         dram_flush_bytes, time_case)
from archstat.profiling.op_families import COLD_LEVELS


def write_cache(root: pathlib.Path, cpu: int, index: int, level: int, kind: str, size: str, shared: str) -> None:
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    for name, text in (("level", str(level)), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
        (d / name).write_text(text + "\n")


@pytest.fixture
def two_core_host(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Two CPUs as this project's CI guests show them: L1d/L1i and a 2 MiB L2 each, one shared 480 MiB L3."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for cpu in (0, 1):
        write_cache(tmp_path, cpu, 0, 1, "Data", "48K", str(cpu))
        write_cache(tmp_path, cpu, 1, 1, "Instruction", "64K", str(cpu))
        write_cache(tmp_path, cpu, 2, 2, "Unified", "2048K", str(cpu))
        write_cache(tmp_path, cpu, 3, 3, "Unified", "491520K", "0-1")
    return tmp_path


def test_sizes_parse_with_and_without_units():
    assert [parse_size(t) for t in ("1024K", "2M", "512", "1G\n")] == [2 ** 20, 2 ** 21, 512, 2 ** 30]


def test_private_caches_sum_the_distinct_l2s_of_the_cores_in_use(two_core_host):
    assert private_cache_bytes(2, two_core_host) == 2 * 2 ** 21
    assert private_cache_bytes(1, two_core_host) == 2 ** 21


def test_the_last_level_cache_is_the_highest_level_counted_once(two_core_host):
    caches = data_caches(two_core_host)  # the instruction caches left out, the shared L3 listed once
    assert caches == {(1, "0"): 48 << 10, (1, "1"): 48 << 10, (2, "0"): 2 << 20, (2, "1"): 2 << 20, (3, "0-1"): 480 << 20}
    assert last_level_cache_bytes(two_core_host) == 480 * 2 ** 20


def test_an_l2_shared_by_two_hyperthreads_counts_once(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for cpu in (0, 1):
        write_cache(tmp_path, cpu, 0, 2, "Unified", "2048K", "0-1")
        write_cache(tmp_path, cpu, 1, 3, "Unified", "32768K", "0-1")
    assert private_cache_bytes(2, tmp_path) == 2 ** 21 and last_level_cache_bytes(tmp_path) == 32 * 2 ** 20


def test_a_host_without_sysfs_caches_reads_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert private_cache_bytes(2, tmp_path) == 0 and last_level_cache_bytes(tmp_path) == 0


def test_the_dram_flush_writes_twice_the_last_level_cache_within_its_bounds():
    assert dram_flush_bytes(32 * 2 ** 20) == FLUSH_BYTES == 64 * 2 ** 20  # the first hosts' L3: as before
    assert dram_flush_bytes(480 * 2 ** 20) == 960 * 2 ** 20  # 64 MiB left most of such an L3 in place
    assert dram_flush_bytes(0) == FLUSH_BYTES  # sysfs silent
    assert dram_flush_bytes(2 ** 31) == DRAM_FLUSH_MAX_BYTES


@pytest.mark.parametrize("module, shape, dram", [(nn.Linear(64, 32), (64,), True), (nn.ReLU(), (4, 8, 8), False),
                                                 (nn.BatchNorm2d(4), (4, 8, 8), False)])
def test_only_the_linears_are_timed_after_a_flush_to_dram(monkeypatch, module, shape, dram):
    """A linear's weights come from DRAM in a pass (read once a pass); every other family's flush keeps
    the 64 MiB that leaves a large L3 holding what a pass would leave there."""
    written: list[tuple[str, int]] = []
    monkeypatch.setattr(microbench, "write_buffer", lambda name, nbytes: written.append((name, nbytes)))
    monkeypatch.setattr(microbench, "last_level_cache_bytes", lambda: 480 * 2 ** 20)
    point = time_case(module, shape, 2, torch.device("cpu"), torch.float32, False, 4)
    assert point is not None and point["time_s"] > 0
    flushes = [w for w in written if w[0] in ("flush", "dram_flush", "cold_level")]
    assert len(flushes) >= 7 and set(flushes[:7]) == ({("dram_flush", 960 * 2 ** 20)} if dram else {("flush", FLUSH_BYTES)})  # one a call
    # then the small benchmarks of the other families at the cold levels, 256 MiB and to DRAM (a linear's
    # own flush is already to DRAM)
    assert flushes[7:] == ([] if dram else [("cold_level", COLD_LEVEL_BYTES)] * COLD_LEVEL_REPEAT
                           + [("dram_flush", 960 * 2 ** 20)] * COLD_LEVEL_REPEAT)
    assert (COLD_LEVELS in point) == (not dram)


def test_the_calibration_cache_key_names_the_cpu_caches(monkeypatch):
    """Guests reporting the same processor came with different caches; a calibration from one is not the other's."""
    from archstat.profiling import calibrate

    keys = []
    for llc in (32 << 20, 480 << 20):
        monkeypatch.setattr(calibrate, "last_level_cache_bytes", lambda llc=llc: llc)
        keys.append(calibrate.entry_key(torch.device("cpu"), "fp32", False))
    assert keys[0] != keys[1] and keys[0].endswith("L3 32768 KiB") and keys[1].endswith("L3 491520 KiB")


def test_the_profile_report_names_the_caches_its_calibration_ran_on():
    from archstat.profiling.profile_format import calibration_lines

    state = {"date": "2026-12-02T05:31:00+00:00", "private_cache_bytes": 4 << 20, "last_level_cache_bytes": 480 << 20}
    line, = calibration_lines({"measured": state})
    assert "calibrated 2026-12-02T05:31:00+00:00" in line and "L2 4 MiB private, L3 480 MiB" in line
    older, = calibration_lines({"measured": {"date": "2026-12-01T00:00:00+00:00", "private_cache_bytes": 2 << 20}})
    assert "CPU caches" not in older  # a calibration from before the L3 was recorded claims nothing
