"""A user's own layers and functions: archstat.register_module / register_function.

The formulas here are written the way a user would write them, then checked the way archstat
checks its own: against the real module (validate), in symbolic mode, and in the meta-device
engine.  A wrong user formula must be caught, not echoed.
"""
from __future__ import annotations

import textwrap

import pytest
import sympy
import torch
from torch import nn

import archstat
from archstat.cli import main
from archstat.formulas import FUNCTION_FORMULAS, MODULE_FORMULAS, registered


class Swish(nn.Module):
    """x * sigmoid(x): two kernels, so sigmoid's output is alive while the multiply runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class LowRankLinear(nn.Module):
    """y = (x U) V: a linear layer factored through rank r."""

    def __init__(self, n_in: int, rank: int, n_out: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(n_in, rank) / n_in ** 0.5)
        self.v = nn.Parameter(torch.randn(rank, n_out) / rank ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.u) @ self.v


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = Swish()
        self.head = LowRankLinear(8, 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.special.erf(self.act(self.conv(x)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def swish(m: nn.Module, inputs: list) -> archstat.Cost:
    x = inputs[0]
    # sigmoid(x) is alive during the multiply, and the multiply saves it (and x) for backward
    return archstat.Cost(out=x.with_shape(x.shape), kind="activation", hparams={"fn": "swish"},
                         work={"transient_bytes": x.nbytes, "saved": [("in", 0), ("new", x.numel, x.dtype)]})


def low_rank(m: LowRankLinear, inputs: list) -> archstat.Cost:
    x = inputs[0]
    (n_in, rank), n_out = m.u.shape, m.v.shape[1]
    rows = x.numel // n_in
    # the (x U) product: alive until the second product is done, and saved for V's gradient
    return archstat.Cost(out=x.with_shape((*x.shape[:-1], n_out)), kind="linear", macs=rows * rank * (n_in + n_out),
                         work={"transient_bytes": rows * rank * x.dtype.itemsize,
                               "saved": [("in", 0), ("new", rows * rank, x.dtype)]})


def erf(args: tuple, kwargs: dict) -> archstat.Cost:
    return archstat.Cost(out=args[0].with_shape(args[0].shape), kind="activation", hparams={"fn": "erf"})


USER_MODULES = {Swish: swish, LowRankLinear: low_rank}
USER_FUNCTIONS = {"special_erf": erf}


def test_without_formulas_the_unknown_op_is_flagged_not_zero():
    df = archstat.analyze(Net(), (3, 16, 16))
    assert df.attrs["partial"]
    assert df.attrs["unsupported"] == ["special_erf (<root>)"]


def test_registered_formulas_make_the_table_complete_and_the_layers_leaves():
    with registered(USER_MODULES, USER_FUNCTIONS):
        df = archstat.analyze(Net(), (3, 16, 16), batch=2)
    assert not df.attrs["partial"]
    assert list(df["op"]) == ["Conv2d", "Swish", "special_erf", "adaptive_avg_pool2d", "flatten", "LowRankLinear"]
    head = df[df["name"] == "head"].iloc[0]
    assert head["macs"] == 2 * 4 * (8 + 10) and head["params"] == 8 * 4 + 4 * 10
    assert df.attrs["total"]["macs"] == 2 * 8 * 16 * 16 * 27 + 2 * 4 * 18


def test_validate_agrees_with_the_real_layers_in_both_modes():
    for mode in ("eval", "train"):
        with registered(USER_MODULES, USER_FUNCTIONS):
            v = archstat.validate(Net(), (3, 16, 16), batch=2, mode=mode, convention="fvcore")
        assert v.attrs["agree"], (mode, v.attrs["mismatches"])


def test_validate_catches_a_wrong_user_formula():
    def dense_macs(m: LowRankLinear, inputs: list) -> archstat.Cost:  # forgets the factorisation
        x = inputs[0]
        return archstat.Cost(out=x.with_shape((*x.shape[:-1], 10)), kind="linear", macs=x.numel * 10)

    def no_temporary(m: nn.Module, inputs: list) -> archstat.Cost:  # forgets sigmoid's output
        return archstat.Cost(out=inputs[0].with_shape(inputs[0].shape), kind="activation")

    with registered({Swish: no_temporary, LowRankLinear: dense_macs}, USER_FUNCTIONS):
        v = archstat.validate(Net(), (3, 16, 16), batch=2, convention="fvcore")
    wrong = "\n".join(v.attrs["mismatches"])
    assert not v.attrs["agree"]
    assert "layer head" in wrong and "act" in wrong and "live" in wrong

    with registered({Swish: no_temporary, LowRankLinear: low_rank}, USER_FUNCTIONS):
        v = archstat.validate(Net(), (3, 16, 16), batch=2, mode="train")
    act = 2 * 8 * 16 * 16 * 4  # one activation of the conv's size; autograd keeps x and sigmoid(x)
    saved = v.attrs["totals"]["training_saved"]
    assert v.attrs["mismatches"][0] == f"layer act (Swish, call 0): bytes saved for backward: archstat {act:,} vs autograd {2 * act:,}"
    assert len(v.attrs["mismatches"]) == 2 and saved[1] - saved[0] == act


def test_symbolic_and_meta_engines_use_the_user_formula():
    with registered(USER_MODULES, USER_FUNCTIONS):
        sym = archstat.analyze(Net(), (3, 16, 16), symbolic=True)
        n = sympy.Symbol("N", positive=True, integer=True)
        head = sym[sym["name"] == "head"].iloc[0]
        assert sympy.simplify(head["macs"] - 4 * 18 * n) == 0

        class Branchy(Net):  # shape-dependent Python: fx cannot trace it, the meta-device engine runs
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if x.shape[-1] > 8:
                    x = self.act(self.conv(x))
                return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

        meta = archstat.analyze(Branchy(), (3, 16, 16))
    assert meta.attrs["engine"] == "meta"
    assert list(meta["op"]) == ["Conv2d", "Swish", "adaptive_avg_pool2d", "flatten", "LowRankLinear"]
    assert meta[meta["name"] == "head"].iloc[0]["macs"] == 4 * 18


@pytest.mark.parametrize("returns, message", [
    (lambda m, i: archstat.Cost(out=i[0], kind="activation", work={"saved": ["input"]}), r"item 'input' is not \('in', k\)"),
    (lambda m, i: (i[0], 0), "returned tuple, not archstat.Cost"),
    (lambda m, i: archstat.Cost(out=i[0], kind="swishy"), "returned kind 'swishy'; use one of: conv"),
    (lambda m, i: archstat.Cost(out=torch.empty(1), kind="activation"), "must give out= a TensorSpec"),
    (lambda m, i: {}["missing"], "failed: KeyError"),
])
def test_a_broken_user_formula_is_a_one_line_error(returns, message):
    with registered({Swish: returns}), pytest.raises(archstat.ArchstatError, match=message) as info:
        archstat.analyze(Net(), (3, 16, 16))
    assert "layer act (Swish)" in str(info.value) and "\n" not in str(info.value)


def test_registered_restores_the_registries_exactly():
    before_modules, before_functions = dict(MODULE_FORMULAS), dict(FUNCTION_FORMULAS)
    with registered({nn.ReLU: swish, Swish: swish}, {"add": erf}):
        assert MODULE_FORMULAS[nn.ReLU] is swish and FUNCTION_FORMULAS["add"] is erf
    assert MODULE_FORMULAS == before_modules and FUNCTION_FORMULAS == before_functions


def _user_file(tmp_path, monkeypatch, body: str) -> None:
    (tmp_path / "user_layers.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "user_layers", raising=False)


def test_cli_picks_up_formulas_registered_where_the_model_is_built(tmp_path, monkeypatch, capsys):
    _user_file(tmp_path, monkeypatch, """
        import torch, archstat
        from torch import nn

        class Gate(nn.Module):
            def forward(self, x):
                return x * torch.sigmoid(x)

        @archstat.register_module(Gate)
        def gate(m, inputs):
            x = inputs[0]
            return archstat.Cost(out=x.with_shape(x.shape), kind="activation", work={"transient_bytes": x.nbytes})

        def build():
            return nn.Sequential(nn.Conv2d(3, 4, 3), Gate())
    """)
    with registered():
        assert main(["validate", "user_layers:build", "--input", "3x8x8"]) == 0
    out = capsys.readouterr().out
    assert "AGREE" in out and "Gate" in out


def test_cli_hints_at_registration_and_rejects_a_broken_formula(tmp_path, monkeypatch, capsys):
    _user_file(tmp_path, monkeypatch, """
        import torch, archstat
        from torch import nn

        class Gate(nn.Module):
            def forward(self, x):
                return torch.special.erf(x)

        def build():
            return nn.Sequential(nn.Conv2d(3, 4, 3), Gate())

        def build_broken():
            archstat.register_module(Gate)(lambda m, inputs: inputs[0])
            return build()
    """)
    with registered():
        assert main(["table", "user_layers:build", "--input", "3x8x8"]) == 0
        assert "archstat.register_function('OP')" in capsys.readouterr().out
        assert main(["table", "user_layers:build_broken", "--input", "3x8x8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "returned TensorSpec, not archstat.Cost" in err


def test_list_ops_shows_every_formula_by_family_yours_included(capsys):
    with registered(USER_MODULES, USER_FUNCTIONS):
        assert main(["list", "--ops"]) == 0
    layers_part, functions_part = capsys.readouterr().out.split("functions and tensor methods")
    layers, functions = ({line.split()[0]: line.split()[1:] for line in part.splitlines() if line.startswith("  ")}
                         for part in (layers_part, functions_part))
    assert "Conv2d" in layers["conv"] and "ZeroPad2d" in layers["pad"] and "normalize" in functions["reduce"]
    assert layers[__name__] == ["LowRankLinear", "Swish"] and functions[__name__] == ["special_erf"]
    for names in layers.values():  # every layer shown is one the registry really resolves
        for name in names:
            cls = getattr(nn, name, None)
            if isinstance(cls, type):
                assert any(base in MODULE_FORMULAS for base in cls.__mro__), name


def test_unsupported_footer_groups_repeated_ops():
    from archstat.reporting.table_format import to_text

    class Erf(nn.Module):
        def forward(self, x):
            return torch.special.erf(x)

    text = to_text(archstat.analyze(nn.Sequential(nn.Conv2d(3, 3, 1), Erf(), Erf(), Erf()), (3, 4, 4)))
    footer = next(line for line in text.splitlines() if line.startswith("UNSUPPORTED"))
    assert footer.endswith("special_erf x3 (1, ...)")
