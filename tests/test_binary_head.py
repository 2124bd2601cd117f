"""The Keras binary head: one sigmoid unit on a two-class dataset trains with binary cross-entropy on its
logit, predicts with a 0.5 threshold, and every command shows the sigmoid's probability."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, strategies as st

from convlab.cli import main
from convlab.data.registry import Dataset
from convlab.factory import create_model
from convlab.plan import plan
from convlab.training import TrainConfig, train
from convlab.training import head
from convlab.training.report import load_run, predict, probabilities

SPEC = "conv(4,3,p=1) bn relu maxpool(2) conv(8,3,p=1) relu gap flatten fc(1) sigmoid"


def two_class(n_train=96, n_test=40, seed=0) -> Dataset:
    """dark (0) vs bright (1) images, 1×12×12."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = (torch.randint(0, 128, (n, 1, 12, 12), generator=g) + 100 * y[:, None, None, None]).to(torch.uint8)
        return x, y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    m = float(tx.float().mean() / 255)
    s = float(tx.float().std() / 255)
    return Dataset("dark-bright", tx, ty, vx, vy, ["dark", "bright"], (m,), (s,))


# -- the head is planned as written


def test_two_classes_keep_the_one_unit_sigmoid_head():
    assert plan(SPEC, (1, 12, 12), 2).spec.to_text().endswith("fc(1) sigmoid")
    assert plan(SPEC.replace(" sigmoid", ""), (1, 12, 12), 2).spec.to_text().endswith("fc(1)")
    m = create_model("sepnet", (3, 32, 32), 2)
    assert isinstance(m[-1], nn.Sigmoid) and m.fc.out_features == 1 and m.notes == ()


@pytest.mark.parametrize("k", [3, 10])
def test_more_classes_drop_the_sigmoid_and_say_so(k):
    m = create_model("sepnet", (3, 32, 32), k)
    assert m.fc.out_features == k and not any(isinstance(x, nn.Sigmoid) for x in m.modules())
    assert m.spec.endswith(f"fc({k})")
    assert m.notes == (f"the head fc(1) sigmoid is resized to fc({k}) for {k} classes, and its sigmoid is dropped: "
                       f"softmax cross-entropy takes the {k} scores",)


def test_other_heads_resize_as_before():
    m = create_model("lenet", (1, 28, 28), 2)
    assert m.fc3.out_features == 2 and m.notes == ()
    assert plan("flatten fc(5) sigmoid fc(3)", (1, 4, 4), 7).spec.to_text() == "flatten fc(5) sigmoid fc(7)"


# -- the loss, probabilities and predictions against torch


@given(st.lists(st.floats(-80, 80), min_size=1, max_size=16), st.integers(0, 2 ** 16 - 1),
       st.sampled_from([0.0, 0.1]))
def test_binary_loss_is_bce_with_logits_and_probs_are_the_sigmoid(zs, bits, eps):
    z = torch.tensor(zs, dtype=torch.float64)[:, None]
    y = torch.tensor([(bits >> i) & 1 for i in range(len(zs))])
    t = y.double() * (1 - eps) + eps / 2
    assert torch.allclose(head.loss(z, y, eps).double(), F.binary_cross_entropy_with_logits(z[:, 0].float(),
                                                                                              t.float()).double())
    p = head.probabilities(z)
    sig = torch.sigmoid(z[:, 0].float())
    assert torch.allclose(p[:, 1], sig, atol=1e-6) and torch.allclose(p[:, 0], 1 - sig, atol=1e-6)
    pred, clear = head.predictions(z), z[:, 0].abs() > 1e-6  # σ(z) rounds to 0.5 for tiny z
    assert torch.equal(pred[clear], (sig[clear] > 0.5).long()) and torch.equal(pred[clear], (z[clear, 0] > 0).long())
    assert torch.equal(head.predictions(z), head.class_scores(z).argmax(1))
    # two-class smoothing over (−z/2, z/2) is the same loss
    assert torch.allclose(head.loss(z, y, eps).double(),
                          F.cross_entropy(head.class_scores(z).float(), y, label_smoothing=eps).double(), atol=1e-5)


def test_binary_loss_is_finite_where_the_sigmoid_rounds_to_one():
    z = torch.tensor([[200.0], [-200.0]])
    assert torch.sigmoid(z[0]) == 1.0  # a loss from σ(z) would take log(0) for label 0
    loss = head.loss(z, torch.tensor([0, 1]))
    assert math.isfinite(float(loss)) and abs(float(loss) - 200.0) < 1e-3


def test_softmax_heads_are_unchanged():
    z = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(head.loss(z, y, 0.1), F.cross_entropy(z, y, label_smoothing=0.1))
    assert torch.equal(head.predictions(z), z.argmax(1))
    assert torch.allclose(head.probabilities(z), torch.softmax(z, 1))


def test_trunk_shares_the_parameters_and_leaves_the_sigmoid():
    m = create_model(SPEC, (1, 12, 12), 2)
    t = head.trunk(m)
    assert not isinstance(t[-1], nn.Sigmoid) and len(t) == len(m) - 1
    assert all(a is b for a, b in zip(t.parameters(), m.parameters()))
    x = torch.randn(3, 1, 12, 12)
    m.eval()
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(t(x)), m(x))
    lenet = create_model("lenet")
    assert head.trunk(lenet) is lenet


# -- training


def test_binary_head_trains_with_bce_past_the_softmax_cap(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ds = two_class()
    run = train(SPEC, ds, TrainConfig(epochs=6, batch_size=16, lr=0.05, augment="none", label_smoothing=0.0,
                                      device="cpu", threads=1, out="runs/b"), progress=False)
    err = capsys.readouterr().err
    assert "binary head: one logit for 'bright' vs 'dark', trained with binary cross-entropy on the logit (before " \
           "the sigmoid)" in err
    assert run.test_acc > 0.9
    assert (tmp_path / "runs/b/model.spec").read_text().strip().endswith("fc(1) sigmoid")
    # the recorded test loss is the binary cross-entropy of the saved model's sigmoid, computed here by hand
    m = run.model.eval()
    x = (ds.test_x.float() / 255 - ds.mean[0]) / ds.std[0]
    with torch.no_grad():
        p = m(x)[:, 0].double()
    y = ds.test_y.double()
    bce = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
    assert run.metrics[-1]["test_loss"] == pytest.approx(bce, rel=1e-4, abs=1e-5)
    assert run.metrics[-1]["test_acc"] == pytest.approx(float(((p > 0.5).long() == ds.test_y).double().mean()))
    # what softmax over a sigmoid could not do: a loss under 0.313 and probabilities over 73.1%
    assert run.metrics[-1]["train_loss"] < 0.313 and float(p.max()) > 0.9


def test_a_one_unit_head_needs_two_classes(tmp_path, monkeypatch):
    from convlab.errors import TrainingError

    monkeypatch.chdir(tmp_path)
    ds = two_class()
    three = Dataset("three", ds.train_x, ds.train_y, ds.test_x, ds.test_y, ["a", "b", "c"], ds.mean, ds.std)
    net = create_model(SPEC, (1, 12, 12))  # a module: it is trained as it is, one unit
    with pytest.raises(TrainingError, match=r"outputs \[1, 1\] but three has 3 classes"):
        train(net, three, TrainConfig(epochs=1, batch_size=16, device="cpu", out="runs/t"), progress=False)


# -- eval, viz, inspect and report show the sigmoid's probability


@pytest.fixture
def folder_run(tmp_path, monkeypatch):
    pil = pytest.importorskip("PIL.Image")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("bright", "dark")):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(40):
            base = 150 if c == "bright" else 20
            pil.fromarray((rng.integers(0, 90, (12, 12)) + base).astype(np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    code = main(["train", SPEC, "--data", f"folder:{tmp_path / 'imgs'}", "--epochs", "6", "--batch-size", "16",
                 "--lr", "0.05", "--augment", "none", "--device", "cpu", "--threads", "1", "--no-progress",
                 "--out", "runs/f"])
    assert code == 0
    return tmp_path / "runs/f"


def test_eval_viz_inspect_report_show_the_sigmoid_probability(folder_run, capsys):
    r = load_run(str(folder_run), device="cpu")
    assert isinstance(r.model[-1], nn.Sigmoid) and r.ds.classes == ["bright", "dark"]
    x, y = r.split("test")
    # eval: the accuracy of the 0.5 threshold on the sigmoid
    capsys.readouterr()
    assert main(["eval", str(folder_run), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    p = predict(r, 0)
    with torch.no_grad():
        sig = float(r.model(p.input.unsqueeze(0))[0, 0])
    assert torch.allclose(p.probs, torch.tensor([1 - sig, sig]), atol=1e-6)
    assert p.pred == int(sig > 0.5)
    all_probs = torch.cat([probabilities(r.model, predict(r, i).input.unsqueeze(0)) for i in range(len(x))])
    assert result["accuracy"] == pytest.approx(float((all_probs[:, 1] > 0.5).long().eq(y).double().mean()))
    assert sum(map(sum, result["confusion"])) == len(x)
    # viz: the printed probability is the sigmoid's (or one minus it)
    assert main(["viz", str(folder_run), "--what", "maps", "--index", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    shown = max(sig, 1 - sig)
    assert f"predicted {r.ds.classes[p.pred]} ({100 * shown:.1f}%)" in out
    # inspect gradcam: the same probability for the predicted class
    assert main(["inspect", str(folder_run), "--what", "gradcam", "--index", "0", "--device", "cpu", "--json"]) == 0
    cam = json.loads(capsys.readouterr().out)["images"][0]
    assert cam["predicted"] == r.ds.classes[p.pred] and cam["probability"] == pytest.approx(shown, abs=1e-6)
    # report: the head is named, with its loss
    assert main(["report", str(folder_run)]) == 0
    page = (folder_run / "report.html").read_text()
    assert "binary head" in page and "binary cross-entropy" in page


def test_training_a_resized_sigmoid_head_says_the_sigmoid_is_dropped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ds = two_class(n_train=32, n_test=8)
    ds.train_y[:4], ds.classes = 2, ["dark", "bright", "grey"]
    x = ds.train_x.expand(-1, 3, -1, -1).contiguous()
    three = Dataset("three", x, ds.train_y, ds.test_x.expand(-1, 3, -1, -1).contiguous(), ds.test_y, ds.classes,
                    ds.mean * 3, ds.std * 3)
    run = train("sepnet:width=4", three, TrainConfig(epochs=1, batch_size=16, device="cpu", threads=1,
                                                     out="runs/k"), progress=False)
    err = capsys.readouterr().err
    assert "note: the head fc(1) sigmoid is resized to fc(3) for 3 classes, and its sigmoid is dropped" in err
    assert "binary head" not in err
    assert (tmp_path / "runs/k/model.spec").read_text().strip().endswith("dropout fc(3)")
    assert not isinstance(run.model[-1], nn.Sigmoid)
