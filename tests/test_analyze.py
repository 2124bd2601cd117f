"""Summary of specs and arbitrary modules against PyTorch: shapes, counts, MACs, receptive fields."""

import copy
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from strategies import chains
from torch.utils.flop_counter import FlopCounterMode

import convlab
from convlab import build, summary
from convlab.cli import main
from convlab.analyze.checks import check
from convlab.errors import ShapeError


def unique_params(m):
    return sum(p.numel() for p in m.parameters())


def flop_counter_macs(model, shape):
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            model(torch.randn(*shape))
    return fc.get_total_flops() // 2


def row_tuples(s):
    return [(r.name, r.type, r.output_shape, r.trainable_params, r.non_trainable_params, r.macs, r.receptive_field)
            for r in s.rows]


@given(chains())
def test_spec_and_module_paths_agree_with_torch(case):
    shape, text, _ = case
    try:
        s = summary(text, shape)
    except ShapeError:
        return
    model = build(text, shape).eval()
    sm = summary(model, shape)
    assert row_tuples(s) == row_tuples(sm)
    with torch.no_grad():
        out = model(torch.randn(1, *shape))
    assert s.output_shape == list(out.shape) == sm.output_shape
    assert s.trainable_params == unique_params(model) == sm.trainable_params
    assert s.macs == flop_counter_macs(model, (1, *shape)) == sm.macs


def test_reference_figures():
    s = summary("resnet18")
    assert s.trainable_params == 11_689_512  # torchvision weights meta
    assert s.macs == 1_814_073_344  # 1.814 G, torchvision weights meta
    last_conv = [r for r in s.rows if r.type == "Conv2d"][-1]
    assert last_conv.name == "layer4.1.conv2"
    assert last_conv.receptive_field["size"] == [435, 435] and last_conv.receptive_field["jump"] == [32, 32]
    s = summary("resnet20")
    assert s.trainable_params == 269_722 and round(s.macs / 1e6, 2) == 40.55  # He et al. 2016 §4.2
    assert summary("lenet").trainable_params == 61_706  # d2l 7.6
    bn = summary("conv(32,3,p=1) bn", (3, 8, 8)).rows[1]
    assert (bn.trainable_params, bn.non_trainable_params) == (64, 64)  # seed 003: 128 in all


def test_flop_counter_agrees_on_zoo_models():
    for name, shape in [("resnet18", (3, 64, 64)), ("mobilenet", (3, 64, 64)), ("resnet20", (3, 32, 32)),
                        ("vgg11", (3, 32, 32)), ("sepnet", (3, 32, 32))]:
        m = convlab.create_model(name, input_shape=shape).eval()
        assert summary(m, shape).macs == flop_counter_macs(m, (1, *shape)), name
        assert summary(name, shape).macs == summary(m, shape).macs


class Custom(nn.Module):
    """Custom forward code: functional ops, a shared module used twice, tied weights, a frozen layer."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.branch = nn.Conv2d(8, 8, 3, padding=1, bias=False)  # used twice
        self.frozen = nn.Conv2d(8, 4, 1)
        self.frozen.requires_grad_(False)
        self.enc = nn.Linear(4 * 8 * 8, 16)
        self.dec = nn.Linear(16, 4 * 8 * 8)
        self.dec.weight = nn.Parameter(self.enc.weight.t().detach().clone())
        self.tied = nn.Linear(16, 16, bias=False)
        self.tied2 = nn.Linear(16, 16, bias=False)
        self.tied2.weight = self.tied.weight

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.branch(x)
        y = self.branch(y) + x  # residual with a shared module
        z = torch.cat([y, x], dim=1)[:, :8]
        z = F.max_pool2d(z, 2)
        z = self.frozen(z)
        z = F.interpolate(z, scale_factor=0.5)
        h = self.enc(z.flatten(1))
        h = self.tied2(self.tied(h)) * 2.0
        return self.dec(h).view(-1, 4, 8, 8)


def test_any_module_custom_forward_shared_and_frozen():
    m = Custom()
    shape = (3, 32, 32)
    s = summary(m, shape, batch_size=2)
    with torch.no_grad():
        out = m(torch.randn(2, *shape))
    assert s.output_shape == list(out.shape)
    assert s.trainable_params == sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert s.non_trainable_params == sum(p.numel() for p in m.parameters() if not p.requires_grad) + 16
    assert s.macs == flop_counter_macs(m, (2, *shape))
    branch_rows = [r for r in s.rows if r.name == "branch"]
    assert len(branch_rows) == 2 and branch_rows[1].trainable_params == 0  # shared: counted once
    leaf_total = sum(r.trainable_params for r in s.rows if r.depth == 0)
    assert leaf_total == s.trainable_params


def test_model_is_left_untouched():
    m = convlab.create_model("resnet20")
    m.train()
    before = copy.deepcopy(m.state_dict())
    summary(m, (3, 32, 32), batch_size=4)
    after = m.state_dict()
    assert m.training and all(mod.training for mod in m.modules())
    assert all(torch.equal(before[k], after[k]) for k in before)  # num_batches_tracked not incremented
    assert all(p.device.type == "cpu" for p in m.parameters())
    assert "forward" not in m.conv1.__dict__  # the run's wrappers are gone


def test_cost_does_not_grow_with_batch_or_resolution():
    m = convlab.create_model("resnet18")
    s1 = summary(m, (3, 224, 224), batch_size=1)
    s32 = summary(m, (3, 224, 224), batch_size=32)
    assert s32.macs == 32 * s1.macs
    assert s32.rows[0].output_shape == [32, 64, 112, 112]


def test_failing_forward_names_the_module():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(ShapeError) as info:
        summary(m, (3, 32, 32))
    msg = str(info.value)
    assert "module 2 (Linear)" in msg and "expected 100 input features" in msg and "7200" in msg
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(16, 8, 3))
    with pytest.raises(ShapeError, match=r"module 1 \(Conv2d\).*expected 16 input channels.*has 8"):
        summary(m, (3, 32, 32))
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4))
    with pytest.raises(ShapeError, match=r"module 1 \(BatchNorm2d\).*expected 4 channels"):
        summary(m, (3, 32, 32))


def test_depth_folding_keeps_totals():
    s = summary("resnet20", depth=0)
    assert all(r.depth == 0 for r in s.rows)
    assert sum(r.trainable_params for r in s.rows) == s.trainable_params
    assert sum(r.macs for r in s.rows) == s.macs


def test_renderers_and_schema():
    s = summary("cifar-cnn")
    d = s.to_dict()
    assert set(d["totals"]) >= {"trainable_params", "non_trainable_params", "params", "macs"}
    assert set(d["rows"][0]) >= {"name", "type", "output_shape", "trainable_params", "non_trainable_params",
                                 "macs", "receptive_field"}
    assert d["rows"][[r["name"] for r in d["rows"]].index("fc1")]["trainable_params"] == 2048 * 128 + 128
    assert any("Keras convention" in r for r in d["rules"])
    assert "| fc1 | Linear | [1, 128] | 262,272 |" in s.to_markdown()
    assert "fc1,Linear,0,1x128,262272,0,262144" in s.to_csv()
    text = str(s)
    assert "fc1" in text and "FLOPs = 2·MACs" in text
    page = s.to_html()
    assert page.count("<tr") == len(s.rows) + 1 and "<td>262,272</td>" in page and "Keras convention" in page


def test_checks_find_each_problem():
    findings, _ = check("conv(32,3,p=1) bn relu maxpool(2) flatten fc(512) fc(10)", (3, 64, 64))
    codes = {f.code: f for f in findings}
    assert "big-first-fc" in codes and codes["big-first-fc"].layer == "fc1"
    assert "bias-before-bn" in codes and codes["bias-before-bn"].layer == "conv1"
    findings, _ = check("sepconv(16,3,p=1) bn relu gap flatten fc(2)", (3, 32, 32))
    assert any(f.code == "separable-at-input" for f in findings)
    findings, _ = check("conv(8,3,s=2)", (3, 32, 32))
    assert [f.code for f in findings] == ["rows-unread"] and "padding=1" in findings[0].fix
    findings, s = check("conv(8,3) maxpool(2) conv(8,9)", (3, 16, 16))
    assert s is None and findings[0].level == "error" and "kernel 9" in findings[0].message
    findings, _ = check("resnet20")
    assert findings == []


def test_cli_summary_check_zoo(capsys):
    assert main(["summary", "resnet20", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["totals"]["trainable_params"] == 269_722
    assert main(["summary", "conv(8,3) relu", "--input", "3,16,16", "--format", "csv"]) == 0
    assert "conv1,Conv2d" in capsys.readouterr().out
    assert main(["check", "conv(8,3) maxpool(2) conv(8,9)", "--input", "3,16,16"]) == 1
    assert "kernel 9" in capsys.readouterr().out
    assert main(["check", "resnet20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["summary", "conv(8,3)"]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["summary", "resnet2O"]) == 2
    assert main(["zoo", "resnet*", "--json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert names[:3] == ["resnet18", "resnet20", "resnet32"]


def test_cli_summary_of_a_python_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "mynet.py").write_text("import torch.nn as nn\n"
                                       "def Net():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["summary", "mynet:Net", "--input", "3,8,8", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["output_shape"] == [1, 4, 6, 6] and d["totals"]["trainable_params"] == 112
