"""Readable closed forms: the named sizes of ``table --symbolic`` reproduce the integer table exactly.

For every zoo model, the definitions (H1 = floor((H - 7)/4) + 1, ...) evaluated in order at random
H, W, N, and then every renamed cell, equal ``analyze(..., symbolic=False)`` at those sizes; the
printed text parses back to the same numbers; no line of the text table passes 160 characters.
"""
import functools
import random

import pytest
import sympy

import archstat
from archstat.analyses.named_sizes import environment, evaluate, name_sizes
from archstat.models import get_model, list_models, model_info
from archstat.reporting.table_symbolic import WIDTH, definition_text, size_text, to_symbolic_text

CELLS = ("out_shape", "in_shapes", "kernel", "stride", "macs", "flops", "act_bytes")


@functools.cache
def symbolic(name: str):
    info = model_info(name)
    df = archstat.analyze(get_model(name, device="meta"), info.default_input, symbolic=True)
    return df, name_sizes(df), [dict(zip(CELLS, row)) for row in zip(*(df[c].tolist() for c in CELLS))]


def sizes(name: str, count: int, seed: int) -> list[tuple[int, int, int]]:
    """Random (H, W, N) from the model's smallest eval input up to twice its default."""
    c, h0, w0 = model_info(name).default_input
    lo = max(model_info(name).min_input[1], 64)
    rng = random.Random(f"{name}-{seed}")
    return [(rng.randint(lo, 2 * h0), rng.randint(lo, 2 * w0), rng.randint(1, 3)) for _ in range(count)]


def check(name: str, h: int, w: int, n: int) -> None:
    df, ns, rows = symbolic(name)
    env = environment(ns, h, w, n)
    num = archstat.analyze(get_model(name, device="meta"), (model_info(name).default_input[0], h, w), batch=n)
    assert len(num) == len(rows)
    for col in CELLS:
        got = [evaluate(ns.rename(r[col]), env) for r in rows]
        assert got == num[col].tolist(), (name, col, (h, w, n))
    for key in ("macs", "flops", "act_bytes"):
        assert evaluate(ns.rename(sympy.sympify(df.attrs["total"][key])), env) == num.attrs["total"][key], key


@pytest.mark.parametrize("name", list_models())
def test_named_sizes_reproduce_the_integer_table(name):
    for h, w, n in sizes(name, 1, seed=0):
        check(name, h, w, n)
    df, ns, _ = symbolic(name)
    text = to_symbolic_text(df, ns=ns)  # the names checked above, not named a second time
    assert max(map(len, text.splitlines())) <= WIDTH
    assert "floor(" not in text.split("\nsizes (")[0]  # every row is in the names


def test_text_names_the_sizes_itself_as_the_caller_did():
    """The CLI's path (no ``ns``): the text names the sizes itself, exactly as above."""
    df, ns, _ = symbolic("alexnet")
    assert to_symbolic_text(df) == to_symbolic_text(df, ns=ns)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_named_sizes_sweep(name):
    for h, w, n in sizes(name, 8, seed=1):
        check(name, h, w, n)


def test_printed_forms_parse_back_to_the_same_numbers():
    """What a reader copies from the screen: the lecture's ``+ 1`` form and the cells, commas dropped."""
    df, ns, rows = symbolic("alexnet")
    env = environment(ns, 300, 250, 2)
    names = {str(s): s for s in env} | {d.name.name: d.name for d in ns.definitions}
    for d in ns.definitions:
        if d.window is None:
            parsed = sympy.parse_expr(definition_text(d.expr), local_dict=names)
            assert int(parsed.xreplace(env)) == env[d.name], d
    for r in rows:
        for col in ("macs", "act_bytes"):
            parsed = sympy.parse_expr(size_text(ns.rename(r[col])).replace(",", ""), local_dict=names)
            assert int(sympy.sympify(parsed).xreplace(env)) == evaluate(ns.rename(r[col]), env)
    assert definition_text(ns.definitions[0].expr) == "floor((H - 7)/4) + 1"
    assert definition_text(ns.definitions[2].expr) == "floor((H1 - 3)/2) + 1"  # pool1, as the slide writes it


def test_adaptive_window_is_its_own_name():
    df, ns, _ = symbolic("alexnet")
    windows = [d for d in ns.definitions if d.window]
    assert [str(d.name) for d in windows] == ["KH1", "KW1"] and windows[0].window[1] == 6
    text = to_symbolic_text(df)
    assert "KH1xKW1" in text and "Max(" not in text and "input 3xHxW  batch N" in text
