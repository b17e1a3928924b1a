"""Ceilings that defend themselves: machine state per entry, poisoned, busy and corrupt caches, the
>1.1x check, `archstat ceilings`, and bad profile input (counts, a batch that cannot fit on the CPU)."""
from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

import archstat.profiling.cache as cache
import archstat.profiling.ceilings as cmod
from archstat import profile
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.profiling.ceilings import Ceilings, check_achieved, defend, entry_key, get_ceilings

CPU = torch.device("cpu")


class Small(nn.Module):
    default_input = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSTAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "load_average", lambda: 0.0)  # idle unless a test says otherwise
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_cache(path, key: str, matmul: float, copy: float, busy: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"device_name": "poisoned", "matmul": {"fp32": matmul}, "copy_bw": copy, "trials": {},
             "state": {"date": "2000-01-01T00:00:00+00:00", "torch": torch.__version__, "threads": 1,
                       "load_before": 9.0 if busy else 0.0, "load_after": 9.0 if busy else 0.0, "busy": busy},
             "env": {}}
    path.write_text(json.dumps({key: entry}))


def test_a_poisoned_cache_is_noticed_and_measured_again(tmp_path, capsys):
    path = tmp_path / "cache" / "ceilings.json"
    write_cache(path, entry_key(CPU, quick=True), matmul=1e3, copy=1e3)  # 1 kFLOP/s: absurdly low
    p = profile(Small(), batch=2, warmup=1, repeat=2, layers=False, quick=True, quiet=True)
    check = p.context["ceiling_check"]
    assert check["remeasured"] and check["old_peak_flops_per_s"] == 1e3
    assert check["new_peak_flops_per_s"] > 1e6 and not check["exceeded"]
    fwd = p.runs.iloc[0]
    assert fwd["peak_flops_per_s"] == check["new_peak_flops_per_s"] and fwd["peak_share"] < cmod.EXCEEDED
    stored = json.loads(path.read_text())[entry_key(CPU, quick=True)]
    assert stored["matmul"]["fp32"] > 1e6 and stored["state"]["date"] != "2000-01-01T00:00:00+00:00"
    err = capsys.readouterr().err
    assert "achieved" in err and "measuring the ceilings again" in err


def test_given_ceilings_that_a_run_beats_are_flagged_not_replaced(capsys):
    low = Ceilings("given", matmul={"fp32": 1e3}, copy_bw=1e3)
    p = profile(Small(), batch=2, warmup=1, repeat=2, layers=False, ceilings=low, quiet=True)
    assert p.context["ceiling_check"]["exceeded"] and not p.context["ceiling_check"]["remeasured"]
    assert p.runs.iloc[0]["peak_flops_per_s"] == 1e3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("archstat: warning: the whole model achieved")


def test_check_achieved_threshold():
    assert check_achieved(1.2e9, 1e9, "x") is not None
    assert check_achieved(1.05e9, 1e9, "x") is None
    assert check_achieved(float("nan"), 1e9, "x") is None and check_achieved(1e9, float("nan"), "x") is None
    ceil, flag = defend(Ceilings("d", matmul={"fp32": 1e9}), 1e9, CPU, "fp32", "x")
    assert flag == {"exceeded": False, "remeasured": False, "message": None} and ceil.peak("fp32") == 1e9


def test_busy_entry_is_measured_again_when_idle(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "ceilings.json"
    write_cache(path, entry_key(CPU, quick=True), matmul=5e9, copy=5e9, busy=True)
    calls = []
    monkeypatch.setattr(cmod, "measure_matmul", lambda *a, **k: calls.append("mm") or 7e9)
    monkeypatch.setattr(cmod, "measure_copy", lambda *a, **k: calls.append("copy") or 8e9)
    monkeypatch.setattr(cache, "load_average", lambda: 50.0)  # still busy: the marked entry is kept
    assert get_ceilings(CPU, ("fp32",), quick=True).matmul["fp32"] == 5e9 and not calls
    monkeypatch.setattr(cache, "load_average", lambda: 0.0)  # idle now: measured again, marked idle
    ceil = get_ceilings(CPU, ("fp32",), quick=True)
    assert ceil.matmul["fp32"] == 7e9 and ceil.copy_bw == 8e9 and calls == ["mm", "copy"]
    assert ceil.state["busy"] is False and ceil.state["threads"] == 1


def test_best_of_trials_keeps_the_largest(monkeypatch):
    values = iter([3e9, 9e9, 4e9])
    assert cmod.best_of(lambda: next(values), 3) == (9e9, [3e9, 9e9, 4e9])


def test_a_measurement_under_load_is_marked(monkeypatch):
    monkeypatch.setattr(cache, "load_average", lambda: 50.0)
    monkeypatch.setattr(cmod, "measure_matmul", lambda *a, **k: 1e9)
    monkeypatch.setattr(cmod, "measure_copy", lambda *a, **k: 1e9)
    assert get_ceilings(CPU, ("fp32",), quick=True).state["busy"] is True


def test_corrupt_cache_is_one_notice_and_a_new_atomic_file(tmp_path, capsys):
    path = tmp_path / "cache" / "ceilings.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"half written": [1, 2')
    ceil = get_ceilings(CPU, ("fp32",), quick=True)
    assert ceil.matmul["fp32"] > 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreadable" in err[0] and "measured again when needed" in err[0]
    assert entry_key(CPU, quick=True) in json.loads(path.read_text())
    assert os.listdir(path.parent) == ["ceilings.json"]  # the temporary file was renamed, none left behind


def test_ceilings_command_prints_what_is_cached_and_when(tmp_path, capsys):
    assert main(["ceilings", "--device", "cpu"]) == 0
    assert "no ceilings cached" in capsys.readouterr().out
    write_cache(tmp_path / "cache" / "ceilings.json", entry_key(CPU), matmul=5e10, copy=2e10, busy=True)
    assert main(["ceilings", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "matmul fp32" in out and "50.0 GFLOP/s" in out and "2000-01-01" in out and "UNDER LOAD" in out


@pytest.mark.parametrize("kwargs, match", [({"repeat": 0}, "repeat must be"), ({"warmup": -1}, "warmup must be"),
                                           ({"layer_repeat": 0}, "layer_repeat must be")])
def test_bad_counts_are_one_line_errors(kwargs, match):
    with pytest.raises(ArchstatError, match=match):
        profile(Small(), ceilings=False, **kwargs)


@pytest.mark.parametrize("flag", [["--repeat", "0"], ["--warmup", "-1"]])
def test_cli_bad_counts_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "alexnet", *flag])
    assert exc.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cpu_batch_that_cannot_fit_is_refused_before_allocating(monkeypatch, capsys):
    import archstat.profiling.profile as pmod

    monkeypatch.setattr(pmod, "time_calls", lambda *a, **k: pytest.fail("ran the model"))
    monkeypatch.setattr(pmod, "free_memory", lambda dev: (2 ** 30, 2 ** 31))  # 1 GiB free
    with pytest.raises(ArchstatError, match=r"batch 100000 needs at least .* GiB are free; try --batch"):
        profile(Small(), batch=100000, ceilings=False)
    monkeypatch.undo()
    # the real thing: alexnet at batch 100000 needs ~hundreds of GiB; refused from /proc/meminfo
    assert main(["profile", "alexnet", "--batch", "100000", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch 100000 needs at least" in err[0]


def test_refresh_ceilings_flag_measures_again(tmp_path, capsys):
    path = tmp_path / "cache" / "ceilings.json"
    write_cache(path, entry_key(CPU, quick=True), matmul=1e15, copy=1e15)  # plausible-looking, never beaten
    args = ["profile", "alexnet", "--input", "3x64x64", "--device", "cpu", "--no-layers", "--quick", "--quiet",
            "--warmup", "0", "--repeat", "1", "--format", "json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["context"]["ceilings"]["matmul_flops_per_s"]["fp32"] == 1e15
    assert main([*args, "--refresh-ceilings"]) == 0
    ctx = json.loads(capsys.readouterr().out)["context"]
    assert ctx["ceilings"]["matmul_flops_per_s"]["fp32"] < 1e15 and ctx["ceilings"]["measured"]["date"] > "2000"
    assert ctx["ceiling_check"]["exceeded"] is False


def test_ceilings_refresh_measures_both(monkeypatch, capsys):
    import archstat.profiling.calibrate as cal

    calls = []
    monkeypatch.setattr(cmod, "get_ceilings", lambda *a, **k: calls.append(("ceilings", k.get("refresh"))))
    monkeypatch.setattr(cal, "get_time_model", lambda *a, **k: calls.append(("time model", k.get("refresh"))))
    assert main(["ceilings", "--device", "cpu", "--refresh", "--quiet"]) == 0
    assert calls == [("ceilings", True), ("time model", True)]


def test_a_measurements_own_threads_do_not_mark_it_busy(monkeypatch):
    """The load after a measurement, less what its own threads added (``own_load``: threads x
    (1 - exp(-t / 60 s))), decides: a minute on 2 threads of an idle 2-core machine is not busy; the
    same reading with other work on top is."""
    import datetime
    import math

    began = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=60)).isoformat()
    own = 2 * (1 - math.exp(-1.0))
    assert cache.own_load(2, 60.0) == pytest.approx(own)
    state = {"date": began, "threads": 2, "load_before": 0.1, "busy": False}
    monkeypatch.setattr(cache, "load_average", lambda: own + 0.1)  # its own threads and nothing else
    assert cache.finish_state(state)["busy"] is False
    monkeypatch.setattr(cache, "load_average", lambda: own + cache.busy_threshold() + 0.1)  # other work besides
    assert cache.finish_state(state)["busy"] is True
    assert cache.finish_state({**state, "busy": True})["busy"] is True  # busy before stays busy
