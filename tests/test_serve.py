"""The playground (`convlab serve`): its JSON API equals the command line's output, points at the bad
token, refuses code and files, and the page in a real (headless Chromium) browser shows the same
table, underlines the error where it is, explains a clicked layer and opens a shared URL."""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convlab.cli import main
from convlab.serve import api, make_server

SPECS = [
    ("lenet-modern", None),
    ("resnet20", None),
    ("resnet20:shortcut=B", "3,40,40"),
    ("conv(8,3,p=1) bn relu maxpool(2) conv(16,3,s=2) relu gap flatten fc(10)", "3,32,32"),
    ("conv(4,3) avgpool(3,s=2,p=1) flatten fc(7)", "1,9,9"),
]


def _cli_json(capsys, spec, shape) -> dict:
    argv = ["summary", spec, "--format", "json"] + (["--input", shape] if shape else [])
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("spec,shape", SPECS)
def test_api_summary_is_the_cli_summary(capsys, spec, shape):
    status, body = api.handle("summary", {"spec": spec, **({"input": shape} if shape else {})})
    assert status == 200 and body["ok"]
    cli = _cli_json(capsys, spec, shape)
    assert body["rows"] == cli["rows"] and body["totals"] == cli["totals"]
    assert body["input_shape"] == cli["input_shape"] and body["output_shape"] == cli["output_shape"]
    assert body["explainable"] == [r["name"] for r in cli["rows"] if r["type"] in ("Conv2d", "MaxPool2d", "AvgPool2d")]


def test_python_line_builds_the_same_model():
    import convlab

    for spec, shape in SPECS:
        _, body = api.handle("summary", {"spec": spec, **({"input": shape} if shape else {})})
        net = eval(body["python"], {"convlab": convlab})  # the line the page's button copies
        assert sum(p.numel() for p in net.parameters()) == body["totals"]["trainable_params"]


LAYERS = ["conv(8,3)", "relu", "maxpool(2)", "bn", "conv(4,1)", "avgpool(2)"]


@given(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=6), st.data(), st.integers(0, 2))
def test_error_points_at_the_typo_where_the_user_typed_it(layers, data, blank_lines):
    """A misspelt layer anywhere, on any line, after leading blank lines: line/column/width name it."""
    i = data.draw(st.integers(0, len(layers) - 1))
    layers = list(layers)
    bad = "relx" if layers[i] == "relu" else layers[i].replace("(", "q(", 1) if "(" in layers[i] else layers[i] + "z"
    layers[i] = bad
    per_line = data.draw(st.integers(1, 3))
    lines = [" ".join(layers[k:k + per_line]) for k in range(0, len(layers), per_line)]
    text = "\n" * blank_lines + "\n".join(lines)
    status, body = api.handle("summary", {"spec": text, "input": "1,28,28"})
    assert status == 400 and body["kind"] == "SpecError"
    line = text.split("\n")[body["line"] - 1]
    token = line[body["column"] - 1: body["column"] - 1 + body["width"]]
    assert token == bad.split("(")[0], (text, body)


def test_shape_error_points_at_the_layer():
    text = "conv(8,3) relu maxpool(2)\n  conv(8,30)"
    status, body = api.handle("summary", {"spec": text, "input": "1,28,28"})
    assert status == 400 and body["kind"] == "ShapeError" and "kernel 30" in body["message"]
    assert (body["line"], body["column"], body["width"]) == (2, 3, len("conv(8,30)"))


@pytest.mark.parametrize("spec,word", [
    ("tempfile:mkdtemp", "never imports code"),
    ("os:getcwd", "never imports code"),
    ("/etc/passwd", "reads no files"),
    ("model.yaml", "reads no files"),
])
def test_api_never_imports_or_reads(spec, word, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helper_net.py").write_text("open('ran', 'w').close()\nNet = None\n")
    (tmp_path / "model.yaml").write_text("- conv(8,3)\n")
    for s in (spec, "helper_net:Net"):
        status, body = api.handle("summary", {"spec": s})
        assert status == 400 and body["kind"] == "UsageError"
    assert word in api.handle("summary", {"spec": spec})[1]["message"]
    assert not (tmp_path / "ran").exists()


def test_api_bounds_and_bad_values():
    status, body = api.handle("summary", {"spec": "relu " * 5000})
    assert status == 400 and f"{api.MAX_SPEC_CHARS:,}" in body["message"]
    for shape in ("3,32", "a,b,c", "0,32,32", "3,99999,32", "1" * 400 + ",2,2"):
        status, body = api.handle("summary", {"spec": "lenet-modern", "input": shape})
        assert status == 400 and body["kind"] == "UsageError", shape
    assert api.handle("summary", {"spec": ""})[0] == 400
    assert api.handle("solve", {"in": "0", "out": "3"})[0] == 400
    assert api.handle("solve", {"in": "x", "out": "3"})[0] == 400
    assert api.handle("nothing", {})[0] == 404
    status, body = api.handle("explain", {"spec": "lenet-modern", "layer": "fc1"})
    assert status == 400 and "conv and pool" in body["message"]


def test_explain_has_the_layers_numbers():
    import torch.nn as nn

    from convlab import explain_conv, explain_pool
    from convlab.factory import create_model

    status, body = api.handle("explain", {"spec": "resnet20", "layer": "layer2.0.conv1"})
    net = create_model("resnet20")
    conv = dict(net.named_modules())["layer2.0.conv1"]
    assert isinstance(conv, nn.Conv2d) and body["input"] == [32, 32]
    assert body["text"] == str(explain_conv((32, 32), conv.kernel_size, conv.stride, conv.padding, conv.dilation))
    assert body["output"] == [16, 16]
    status, body = api.handle("explain", {"spec": "conv(4,3) maxpool(3,s=2,p=1)", "input": "1,10,10",
                                          "layer": "maxpool"})
    assert status == 200 and body["text"] == str(explain_pool((8, 8), (3, 3), (2, 2), (1, 1)))


def test_solve_is_convlab_solve():
    from convlab import solve

    status, body = api.handle("solve", {"in": "28", "out": "14"})
    assert status == 200 and [s["text"] for s in body["solutions"]] == [str(s) for s in solve(28, 14)][:12]
    assert body["count"] == len(solve(28, 14))


def test_yaml_spec_as_dropped():
    status, body = api.handle("summary", {"spec": "- conv(8,3)\n- relu\n- flatten\n- fc(10)", "format": "yaml",
                                          "input": "1,28,28"})
    assert status == 200 and body["output_shape"] == [1, 10]
    status, body = api.handle("summary", {"spec": "- conv(8,3)\n- relx", "format": "yaml", "input": "1,28,28"})
    assert status == 400 and "line" not in body  # positions in YAML are per item: no underline in the text


@pytest.mark.parametrize("spec,shape", SPECS)
def test_api_draw_is_convlab_draw(spec, shape):
    import xml.etree.ElementTree as ET

    import convlab

    for view in ("volumes", "graph"):
        if view == "graph" and not shutil.which("dot"):
            continue
        status, body = api.handle("draw", {"spec": spec, "view": view, **({"input": shape} if shape else {})})
        assert status == 200 and body["ok"] and body["view"] == view, body.get("message")
        assert ET.fromstring(body["svg"]).tag.endswith("svg")
        d = convlab.draw(spec, tuple(int(v) for v in shape.split(",")) if shape else None, view=view)
        if view == "graph":
            assert body["nodes"] == len(d.graph.nodes) and body["edges"] == len(d.graph.edges)
        else:
            assert body["svg"] == d.to_svg()  # the page shows exactly what `convlab draw --view volumes` writes


def test_api_draw_depth_bounds_and_refusals(tmp_path, monkeypatch):
    if shutil.which("dot"):
        full = api.handle("draw", {"spec": "resnet20", "view": "graph"})[1]
        folded = api.handle("draw", {"spec": "resnet20", "view": "graph", "depth": "1"})[1]
        assert folded["nodes"] < full["nodes"]
    for params, word in [({"spec": "resnet20", "view": "tree"}, "view"),
                         ({"spec": "resnet20", "depth": "-1"}, "depth"),
                         ({"spec": "tempfile:mkdtemp"}, "never imports code"),
                         ({"spec": "relu " * 5000}, f"{api.MAX_SPEC_CHARS:,}")]:
        status, body = api.handle("draw", params)
        assert status == 400 and word in body["message"], (params, body)
    monkeypatch.setattr(api.limits, "PLAYGROUND_GRAPH_NODES", 10)
    status, body = api.handle("draw", {"spec": "resnet20", "view": "graph"})
    assert status == 400 and "at most 10" in body["message"]
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz: the graph says so, the volumes view still draws
    status, body = api.handle("draw", {"spec": "lenet-modern", "view": "graph"})
    assert status == 400 and "Graphviz" in body["message"] and "volumes view needs no Graphviz" in body["message"]
    assert api.handle("draw", {"spec": "lenet-modern", "view": "volumes"})[0] == 200


# ------------------------------------------------------------------ the HTTP server


@pytest.fixture(scope="module")
def server():
    srv = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_http_serves_the_page_and_only_the_page(server):
    status, headers, body = _get(server + "/")
    assert status == 200 and b"convlab playground" in body and "text/html" in headers["Content-Type"]
    assert b"http" not in body.replace(b"http-equiv", b"")  # no CDN: every asset is local
    for name in ("app.js", "style.css"):
        status, _, text = _get(f"{server}/static/{name}")
        assert status == 200 and b"http://" not in text and b"https://" not in text
    for bad in ("/static/../__init__.py", "/static/api.py", "/etc/passwd", "/static/"):
        assert _get(server + bad)[0] == 404
    status, _, body = _get(server + "/api/summary?spec=lenet-modern")
    assert status == 200 and json.loads(body)["totals"]["params"] > 0
    status, _, body = _get(server + "/api/summary?spec=relx")
    assert status == 400 and json.loads(body)["kind"] == "SpecError"


def test_http_refuses_foreign_hosts_and_huge_requests(server):
    assert _get(server + "/api/zoo", {"Host": "attacker.example:8765"})[0] == 403
    assert _get(server + "/api/zoo", {"Host": "localhost"})[0] == 200
    assert _get(server + "/api/summary?spec=" + "r" * 70_000)[0] == 414


def test_cli_serve_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


# ------------------------------------------------------------------ in a real browser

def _chrome():
    from browser import headless_chrome

    return headless_chrome(pytest.skip)


@pytest.fixture(scope="module")
def browser():
    b = _chrome()
    yield b
    b.quit()


def _wait(browser, cond, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.02).until(lambda d: cond(d))


def _state(browser):
    return browser.find_element("tag name", "body").get_attribute("data-state")


def _type(browser, text):
    """Type into the spec box as a user does, and wait for the view of the last keystroke."""
    box = browser.find_element("id", "spec")
    browser.execute_script("arguments[0].value = ''", box)
    box.send_keys(text)
    _wait(browser, lambda d: d.execute_script(
        "return document.body.dataset.pending === undefined && String(state.seq) === document.body.dataset.seq"))


def _table(browser):
    rows = browser.find_elements("css selector", "#table tbody tr")
    return [[c.text for c in r.find_elements("tag name", "td")] for r in rows]


def test_page_table_is_the_summary(browser, server, capsys):
    from urllib.parse import quote

    spec, shape = "conv(8,3,p=1) bn relu maxpool(2) conv(16,3,s=2) relu gap flatten fc(10)", "3,32,32"
    browser.get(f"{server}/?spec={quote(spec)}&input={shape}")
    _wait(browser, lambda d: _state(d) == "ok")
    cli = _cli_json(capsys, spec, shape)
    table = _table(browser)
    assert [t[0] for t in table] == [r["name"] for r in cli["rows"]]
    assert [t[2] for t in table] == ["×".join(map(str, r["output_shape"][1:])) for r in cli["rows"]]
    assert [t[3] for t in table] == [f"{r['trainable_params']:,}" for r in cli["rows"]]
    assert f"{cli['totals']['params']:,}" in browser.find_element("id", "totals").text
    assert browser.find_element("id", "python").text.startswith("convlab.build(")


def test_page_underlines_the_typo_and_keeps_the_last_view(browser, server):
    browser.get(server + "/")
    _wait(browser, lambda d: _state(d) == "ok")
    _type(browser, "conv(6,5,p=2) relu\nmaxpool(2) relx flatten fc(10)")
    _wait(browser, lambda d: _state(d) == "error")
    mark = browser.find_element("id", "error-mark")
    assert mark.text == "relx" and (mark.get_attribute("data-line"), mark.get_attribute("data-column")) == ("2", "12")
    assert "did you mean 'relu'" in browser.find_element("id", "error-message").text
    view = browser.find_element("id", "view")
    assert "stale" in view.get_attribute("class") and _table(browser)  # the last good table, dimmed
    browser.save_screenshot(str(Path(os.environ.get("CONVLAB_SCREENSHOTS", "/tmp")) / "playground-error.png"))
    _type(browser, "conv(6,5,p=2) relu\nmaxpool(2) relu flatten fc(10)")
    _wait(browser, lambda d: _state(d) == "ok")
    assert "stale" not in view.get_attribute("class") and not browser.find_elements("id", "error-mark")


def test_page_explains_a_clicked_row_and_solves(browser, server):
    from convlab import explain_conv, solve

    browser.get(server + "/?spec=lenet-modern")
    _wait(browser, lambda d: _state(d) == "ok")
    browser.find_element("css selector", 'tr[data-name="conv2"]').click()
    _wait(browser, lambda d: d.find_element("id", "explain-text").text.strip() != "")
    text = browser.find_element("id", "explain-text").text
    assert text == str(explain_conv((14, 14), 5, 1, 0))
    out = browser.find_element("id", "solve-out")
    out.clear()
    out.send_keys("7")
    browser.find_element("css selector", "#solve-form button").click()
    _wait(browser, lambda d: d.find_elements("css selector", "#solutions li"))
    items = [li.text for li in browser.find_elements("css selector", "#solutions li")]
    assert items[0].startswith(str(solve(14, 7)[0]))
    browser.save_screenshot(str(Path(os.environ.get("CONVLAB_SCREENSHOTS", "/tmp")) / "playground.png"))


def test_page_refuses_imports_and_oversized_specs(browser, server):
    browser.get(server + "/?spec=tempfile:mkdtemp")
    _wait(browser, lambda d: _state(d) == "error")
    assert "never imports code" in browser.find_element("id", "error-message").text
    browser.get(server + "/")
    _wait(browser, lambda d: _state(d) == "ok")
    browser.execute_script("const b = document.getElementById('spec'); b.value = 'relu '.repeat(5000);"
                           "b.dispatchEvent(new Event('input'));")
    _wait(browser, lambda d: _state(d) == "error")
    assert f"{api.MAX_SPEC_CHARS:,}" in browser.find_element("id", "error-message").text


def test_page_url_follows_the_spec(browser, server):
    from urllib.parse import parse_qs, urlsplit

    browser.get(server + "/")
    _wait(browser, lambda d: _state(d) == "ok")
    _type(browser, "conv(4,3) relu flatten fc(3)")
    q = parse_qs(urlsplit(browser.current_url).query)
    assert q["spec"] == ["conv(4,3) relu flatten fc(3)"] and q["input"] == ["1,28,28"]
    browser.get(browser.current_url)  # the shared link opens the same view
    _wait(browser, lambda d: _state(d) == "ok")
    assert [t[0] for t in _table(browser)] == ["conv1", "relu", "flatten", "fc"]


def test_page_draws_the_model_and_follows_the_spec(browser, server):
    import convlab

    browser.get(server + "/?spec=resnet20")
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.picture") == "ok")
    img = browser.find_element("id", "picture")
    assert img.get_attribute("data-view") == "volumes" and img.size["width"] > 300
    browser.find_element("css selector", '.tab[data-view="graph"]').click()
    _wait(browser, lambda d: d.find_element("id", "picture").get_attribute("data-view") == "graph")
    if not shutil.which("dot"):
        return
    assert img.get_attribute("data-nodes") == str(len(convlab.draw("resnet20").graph.nodes))
    browser.get(server + "/?view=graph&input=1,28,28&spec=lenet-modern")
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.picture") == "ok")
    img = browser.find_element("id", "picture")
    _type(browser, "conv(8,3,p=1) relu maxpool(2) flatten fc(10)")
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.pictureSeq === String(state.seq)"))
    assert img.get_attribute("data-nodes") == str(len(convlab.draw("conv(8,3,p=1) relu maxpool(2) flatten fc(10)",
                                                                  (1, 28, 28)).graph.nodes))
    assert "view=graph" in browser.current_url
    _type(browser, "conv(8,3,p=1) relx")  # an error: the last picture stays, dimmed with the table
    _wait(browser, lambda d: _state(d) == "error")
    assert not img.get_attribute("hidden") and "stale" in browser.find_element("id", "view").get_attribute("class")
