"""The CPU's caches read from a sysfs tree."""
from __future__ import annotations

import os
import pathlib

import pytest

from archstat.profiling.cpu_caches import last_level_cache_bytes, parse_size, private_cache_bytes


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
    assert last_level_cache_bytes(two_core_host) == 480 * 2 ** 20  # shared by both CPUs, listed once


def test_a_host_without_sysfs_caches_reads_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert private_cache_bytes(2, tmp_path) == 0 and last_level_cache_bytes(tmp_path) == 0

