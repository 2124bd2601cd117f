"""Bounded work and clear errors on hostile input: every limit named, no foreign exception, no hang."""

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convlab import build, limits, parse
from convlab.analyze.checks import check
from convlab.cli import main
from convlab.errors import ConvlabError, ShapeError, SpecError
from convlab.plan import check_fits, plan


def quick(fn, *a, seconds=5.0, **kw):
    t = time.perf_counter()
    try:
        return fn(*a, **kw)
    finally:
        assert time.perf_counter() - t < seconds, f"{fn.__name__} took too long"


# ---------------------------------------------------------------- item 6: bounded work


@pytest.mark.parametrize("text, words", [
    ("relu x 1000000000", "repeat count 1,000,000,000 is beyond convlab's limit of 10,000"),
    ("(relu x 10000) x 10000", "expands to 100,000,000 layers, beyond convlab's limit of 20,000"),
    ("[[relu x 5000] x 5] x 5", "expands to"),
    ("(" * 5000 + "relu" + ")" * 5000, "nested 51 deep, beyond convlab's limit of 50"),
    ("conv(" + "9" * 5000 + ",3)", "5,000 digits; convlab takes at most 10"),
    ("relu x" + "9" * 5000, "5,000 digits"),
    ("conv(99999999999,3)", "11 digits"),
    ("conv(16,3,s=9999999999)", "s is 9,999,999,999, beyond convlab's limit of 2,147,483,647"),
])
def test_spec_limits_are_named(text, words):
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace(")", r"\)")):
        quick(parse, text)


@given(openers=st.lists(st.sampled_from(["(", "[", "residual[", "( ", "stage["]), min_size=40, max_size=60),
       inner=st.sampled_from(["relu", "conv(4,3)", "conv (4,3)", "fc(3) relu"]))
def test_the_lexer_refuses_deep_nesting_where_the_parser_would(openers, inner):
    closers = {"(": ")", "[": "]", "residual[": "]", "( ": ")", "stage[": "]"}
    text = "".join(openers) + inner + "".join(closers[o] for o in reversed(openers))
    depth = len(openers) + ("conv (" in inner)  # "conv (4,3)": the space makes the bracket a group
    if depth <= 50:
        try:
            parse(text)
        except SpecError as e:
            assert "nested" not in str(e), str(e)  # e.g. 'stage' is no layer: another error, not nesting
        return
    if len(openers) > 50:  # the bracket of the 51st opener
        col = len("".join(openers[:50])) + max(openers[50].find("("), openers[50].find("[")) + 1
    else:
        col = text.index("(4,3)") + 1
    with pytest.raises(SpecError, match=rf"brackets nested 51 deep, beyond convlab's limit of 50 \(line 1, column {col}\)"):
        parse(text)


def test_a_megabyte_of_brackets_is_refused_at_the_51st(tmp_path):
    with pytest.raises(SpecError, match="nested 51 deep"):
        quick(parse, "[" * 500_000 + "relu" + "]" * 499_000, seconds=0.5)
    for suffix in (".yaml", ".json"):
        (tmp_path / f"deep{suffix}").write_text('{"a": "[[[[", "b": ' + "[" * 400_000 + "]" * 400_000 + "}")
        with pytest.raises(SpecError, match="nested too deeply to read"):
            quick(parse, tmp_path / f"deep{suffix}", seconds=0.5)
    (tmp_path / "quoted.yaml").write_text('- "' + "{" * 1000 + '"\n- relu\n')  # brackets in a string nest nothing
    with pytest.raises(SpecError) as e:
        parse(tmp_path / "quoted.yaml")
    assert "nested" not in str(e.value)


def test_residual_stride_search_is_closed_form():
    s = quick(plan, "input(1,100000000,100000000) residual(proj)[conv(4,3,s=7,p=1)]")
    assert s.nodes[0].children[1].children[0].info["stride"] == (7, 7)


def test_structured_forms_have_the_same_limits():
    with pytest.raises(SpecError, match="repeat x: 1,000,000,000,000 is beyond"):
        quick(parse, [{"relu": None, "x": 10**12}])
    deep: list = ["relu"]
    for _ in range(200):
        deep = [{"stage": deep}]
    with pytest.raises(SpecError, match="nested 51 deep"):
        quick(parse, deep)
    with pytest.raises(SpecError, match="expands to"):
        quick(parse, [{"stage": ["relu x 10000"], "x": 10000}])


def test_the_playground_reads_the_same_limits():
    from convlab.serve import api

    assert api.limits is limits and api.MAX_SPEC_CHARS == limits.PLAYGROUND_SPEC_CHARS
    status, body = api.handle("summary", {"spec": "relu x 1000000000", "input": "1,8,8"})
    assert status == 400 and "limit of 10,000" in body["message"]


# ---------------------------------------------------------------- item 7: foreign exceptions


@pytest.mark.parametrize("structure", [
    [{"conv": {1: 2}}], [{5: 3}], [{"conv": {"out": [[1, 2]], "k": 3}}], [{"res": {"out": 8, "shortcut": ["A"]}}],
    [[["relu"]]], {"layers": {"a": 1}}, [{"conv": {"out": True, "k": 3}}], [None],
])
def test_wrong_types_in_yaml_forms_are_spec_errors(structure):
    with pytest.raises(SpecError):
        parse(structure)


def test_deep_json_and_binary_files_are_spec_errors(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpecError, match="deep.json"):
        parse(deep)
    binary = tmp_path / "net.spec"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        parse(binary)
    with pytest.raises(SpecError, match="cannot be read"):
        parse("x" * 300 + ".spec")


def test_a_long_name_with_a_colon_is_no_os_error(capsys):
    assert main(["check", "a" * 300 + ":b", "--input", "1,8,8"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_refuses_a_model_that_cannot_fit_in_memory():
    findings, _ = check("input(1,1000,1000) flatten fc(1000000)")
    assert findings[0].level == "error" and findings[0].code == "memory"
    assert "cannot run on this machine" in findings[0].message and "1,000,001,000,000 parameters" in findings[0].message
    findings, _ = check("input(1,100000000,100000000) residual[conv(1,1)]")
    assert findings[0].code == "memory"
    with pytest.raises(ShapeError, match="cannot build the model: its 1,000,001,000,000 parameters need 4.0 TB"):
        quick(build, "input(1,1000,1000) flatten fc(1000000)")
    findings, _ = check("input(1,28,28) conv(8,3) flatten fc(10)")
    assert findings == []


def test_check_fits_reads_the_address_space_limit(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    with pytest.raises(ShapeError, match="1.0 kB of memory available"):
        check_fits(plan("conv(16,3)", (3, 8, 8)))


def test_input_shapes_beyond_the_limit_are_shape_errors():
    with pytest.raises(ShapeError, match="input shape H is"):
        plan("relu", (1, 10**400, 1))
    with pytest.raises(ShapeError):
        plan("relu", (1, 2.5, 1))


# ---------------------------------------------------------------- item 12: fc(in=auto)


def test_fc_in_auto_is_the_documented_default():
    assert parse("fc(10,in=auto)").layers == parse("fc(10)").layers
    assert parse("fc(out=10, in=auto)").to_text() == "fc(10)"
    assert parse([{"fc": {"out": 10, "in": "auto"}}]).layers == parse("fc(10)").layers
    from convlab.spec import FC, signature

    assert "in=auto" in signature(FC)
    assert build("flatten fc(10,in=auto)", (1, 4, 4)).fc.in_features == 16


# ---------------------------------------------------------------- item 8: CLI arithmetic


@pytest.mark.parametrize("argv, words", [
    (["size", "conv", "--in", "7", "--kernel", "3", "--stride", "0"], "--stride/-s: expected an integer >= 1, got 0"),
    (["solve", "--in", "28", "--out", "14", "--stride", "0"], "--stride/-s: expected an integer >= 1, got 0"),
    (["solve", "--in", "7", "--out", "5", "--kernel", "-3"], "--kernel/-k: expected an integer >= 1, got -3"),
    (["solve", "--in", "7", "--out", "5", "--padding", "-1"], "--padding/-p: expected an integer >= 0, got -1"),
    (["solve", "--in", "7", "--out", "5", "--limit", "-3"], "--limit: expected an integer >= 1, got -3"),
    (["size", "conv", "--in", "7", "--kernel", "3", "--dilation", "0"], "--dilation/-d: expected an integer >= 1"),
    (["size", "conv", "--in", "9" * 400, "--kernel", "3"], "has 400 digits; convlab takes integers up to 2,147,483,647"),
    (["size", "conv", "--in", "7,abc", "--kernel", "3"], "expected an integer >= 1"),
    (["check", "relu", "--input", "1,8," + "9" * 400], "has 400 digits"),
    (["summary", "relu", "--input", "1,8,8", "--batch", "0"], "--batch: expected an integer >= 1, got 0"),
    (["chain", "--in", "28", "k3", "x999999999"], "999,999,999 steps, beyond convlab's limit of 10,000"),
    (["chain", "--in", "28", "k" + "9" * 5000], "5,000 digits"),
    (["compare", "run", "--plot", "x.txt"], "--plot: 'x.txt': convlab writes .png here"),
    (["report", "run", "--out", "x.txt"], "--out: 'x.txt': convlab writes .html or .htm here"),
])
def test_cli_refuses_nonsense_in_one_line(argv, words, capsys):
    assert quick(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("convlab: error:") and words in err and "\n" not in err, err


def test_cli_out_folder_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("mine")
    for cmd in ("eval", "viz", "inspect"):
        argv = [cmd, str(tmp_path), "--out", str(f)] + (["--what", "activations"] if cmd == "inspect" else [])
        assert main(argv) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert f.read_text() == "mine"


def test_stride_given_as_one_is_still_honoured(capsys):
    assert main(["size", "conv", "--in", "7", "--kernel", "3", "--stride", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == 3


def test_solve_with_a_huge_kernel_is_instant_and_checked():
    from convlab.arith import solve

    sols = quick(solve, 28, 14, [300_000_000], seconds=1.0)
    assert sols and all((28 + 2 * s.padding - s.dilation * (s.kernel - 1) - 1) // s.stride + 1 == 14 for s in sols)
    with pytest.raises(ShapeError, match="combinations to try, beyond"):
        solve(28, 14, range(1, 2000), range(1, 2000), range(1, 2000))


@pytest.mark.parametrize("n, m", [(28, 14), (7, 5), (32, 32), (224, 112), (5, 1), (1, 1), (9, 3)])
def test_closed_form_solve_equals_the_brute_force_search(n, m):
    from convlab.arith import solve

    brute = set()
    for d in range(1, 4):
        for k in range(1, 8):
            ek = d * (k - 1) + 1
            for s in range(1, 5):
                for p in range(0, (ek - 1) // 2 + 2):
                    if n + 2 * p >= ek and (n + 2 * p - ek) // s + 1 == m:
                        brute.add((k, s, p, d))
    assert {(x.kernel, x.stride, x.padding, x.dilation) for x in solve(n, m)} == brute
