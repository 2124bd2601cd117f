"""--recipe and --init: d2l's Trainer as a named recipe, and the weight initialisations (torch as the oracle)."""

import math

import pytest
import torch
import torch.nn as nn
import yaml
from minidata import make_idx_dataset

from convlab.cli import build_parser, main
from convlab.errors import UsageError
from convlab.factory import create_model
from convlab.training import TrainConfig, train
from convlab.training.config import RECIPES, with_family_defaults
from convlab.training.init import init_weights
from convlab.training.optim import lr_at, make_optimizer

D2L = dict(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant",
           warmup=0.0, label_smoothing=0.0, augment="none", init="xavier", test_flip=False)  # d2l scores images as they are


@pytest.mark.parametrize("family", ["lenet", "cnn", "resnet-cifar", "plain-cifar", None])
def test_d2l_recipe_is_d2l_trainer_whatever_the_family(family):
    c = with_family_defaults(TrainConfig(model="lenet", recipe="d2l"), family)
    assert {k: getattr(c, k) for k in D2L} == D2L == RECIPES["d2l"]


@pytest.mark.parametrize("family", ["vgg", "resnet"])
def test_d2l_recipe_trains_vgg_and_resnet18_at_lr_001(family):
    c = with_family_defaults(TrainConfig(recipe="d2l"), family)  # d2l 8.2 VGG(lr=0.01), 8.6 ResNet18(lr=0.01)
    assert {k: getattr(c, k) for k in D2L} == {**D2L, "lr": 0.01}


def test_flags_override_the_recipe():
    c = with_family_defaults(TrainConfig(recipe="d2l", lr=0.9, init="default", epochs=5), "small")
    assert (c.lr, c.init, c.epochs, c.batch_size, c.momentum) == (0.9, "default", 5, 128, 0.0)


def test_without_recipe_the_family_recipe_and_torch_init():
    c = with_family_defaults(TrainConfig(model="lenet"), "small")
    assert (c.recipe, c.init, c.lr, c.momentum, c.schedule) == (None, "default", 0.2, 0.9, "onecycle")


def test_fastcnn_trains_the_small_cnn_recipe_short_and_hot():
    from convlab import zoo

    fast = with_family_defaults(TrainConfig(model="fastcnn"), zoo.get("fastcnn").family)
    small = with_family_defaults(TrainConfig(model="lenet-modern"), zoo.get("lenet-modern").family)
    assert (fast.epochs, fast.lr, small.epochs, small.lr) == (3, 0.4, 8, 0.2)
    same = ("batch_size", "optimizer", "momentum", "weight_decay", "schedule", "warmup", "label_smoothing", "test_flip")
    assert {k: getattr(fast, k) for k in same} == {k: getattr(small, k) for k in same}
    d2l = with_family_defaults(TrainConfig(model="fastcnn", recipe="d2l"), zoo.get("fastcnn").family)
    assert {k: getattr(d2l, k) for k in D2L} == D2L  # a named recipe still replaces the family's


def test_d2l_optimizer_is_plain_sgd_with_a_constant_lr():
    c = with_family_defaults(TrainConfig(model="lenet", recipe="d2l"), "small")
    opt = make_optimizer(create_model("lenet"), c)
    assert isinstance(opt, torch.optim.SGD)
    for g in opt.param_groups:
        assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"], g["dampening"]) == (0.1, 0.0, False, 0.0, 0)
    assert {lr_at(s, 4690, c) for s in (0, 1, 2345, 4689, 4690)} == {0.1}


def test_unknown_recipe_or_init_is_a_clear_error():
    with pytest.raises(UsageError, match=r"--recipe 'd2k' is not a recipe — did you mean 'd2l'\?"):
        with_family_defaults(TrainConfig(recipe="d2k"), "small")
    with pytest.raises(UsageError, match="--init must be one of default, xavier, kaiming, got 'he'"):
        with_family_defaults(TrainConfig(init="he"), "small")
    for argv, word in ((["train", "lenet", "--recipe", "keras"], "--recipe"), (["train", "lenet", "--init", "he"],
                                                                             "--init")):
        with pytest.raises(UsageError, match=f"argument {word}: invalid choice"):
            build_parser().parse_args(argv)


def _reference(model: nn.Module, how: str) -> dict:
    """The weights torch's own initialisers draw, in module order, for conv and linear weights only."""
    out = {}
    for name, m in model.named_modules():
        if type(m) in (nn.Conv2d, nn.Linear):
            w = torch.empty_like(m.weight)
            if how == "xavier":
                nn.init.xavier_uniform_(w)
            else:
                nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
            out[name + ".weight"] = w
    return out


@pytest.mark.parametrize("name", ["lenet", "resnet20", "sepnet"])
@pytest.mark.parametrize("how", ["xavier", "kaiming"])
def test_init_draws_what_torch_draws_and_leaves_the_rest(name, how):
    torch.manual_seed(3)
    model = create_model(name, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    n = init_weights(model, how)
    twin = create_model(name, num_classes=10)
    torch.manual_seed(7)
    ref = _reference(twin, how)
    after = model.state_dict()
    assert n == len(ref) > 0
    for k, v in after.items():
        if k in ref:
            assert torch.equal(v, ref[k]), k
        else:  # biases, BatchNorm, everything else: as the constructor left it
            assert torch.equal(v, before[k]), k


def test_xavier_bound_and_kaiming_spread():
    torch.manual_seed(0)
    lin = nn.Linear(400, 120)
    init_weights(nn.Sequential(lin), "xavier")
    bound = math.sqrt(6 / (400 + 120))
    assert float(lin.weight.detach().abs().max()) <= bound and float(lin.weight.detach().abs().max()) > 0.95 * bound
    conv = nn.Conv2d(64, 64, 3)
    init_weights(nn.Sequential(conv), "kaiming")
    assert abs(float(conv.weight.detach().std()) - math.sqrt(2 / (64 * 9))) < 0.01


def test_default_init_changes_nothing():
    m = create_model("lenet")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert init_weights(m, "default") == 0
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_train_starts_from_the_init_and_records_recipe_and_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_idx_dataset(tmp_path / "fm", n_train=32, n_test=8)
    run = train(config=TrainConfig(model="lenet", data="fashion-mnist", data_dir=str(tmp_path / "fm"), recipe="d2l",
                                   lr=1e-30, batch_size=16, max_steps=1, device="cpu", threads=1, out="runs/x"),
                progress=False)
    torch.manual_seed(0)  # the run's seed: the model is built, then init_cnn re-draws its weights
    expect = create_model("lenet", (1, 28, 28), 10)
    init_weights(expect, "xavier")
    got = run.model.state_dict()
    for k, v in expect.state_dict().items():
        assert torch.allclose(got[k], v, atol=1e-6), k
    saved = yaml.safe_load((tmp_path / "runs/x/config.yaml").read_text())
    assert (saved["recipe"], saved["init"], saved["momentum"], saved["schedule"], saved["augment"]) == \
        ("d2l", "xavier", 0.0, "constant", "none")


def test_cli_recipe_and_init(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_idx_dataset(tmp_path / "fm", n_train=32, n_test=8)
    code = main(["train", "lenet", "--data-dir", str(tmp_path / "fm"), "--recipe", "d2l", "--init", "kaiming",
                 "--batch-size", "16", "--max-steps", "2", "--device", "cpu", "--threads", "1", "--no-progress",
                 "--out", "runs/c"])
    assert code == 0
    saved = yaml.safe_load((tmp_path / "runs/c/config.yaml").read_text())
    assert (saved["recipe"], saved["init"], saved["lr"]) == ("d2l", "kaiming", 0.1)


def _fashion_mnist():
    from convlab.data import load

    try:
        return load("fashion-mnist", download=False, progress=False)
    except Exception:  # not installed here: the measured claim cannot be checked
        pytest.skip("Fashion-MNIST is not installed")


@pytest.mark.slow
def test_sigmoid_lenet_stays_at_chance_with_torch_init_and_learns_with_xavier(tmp_path, monkeypatch):
    """d2l 7.6's run: sigmoid LeNet, plain SGD lr 0.1. With torch's default init it sits at 10% (measured: 10.00%
    test accuracy for the first 5 epochs); with init_cnn's Xavier it learns (measured: 23.7% after 1 epoch, 55.7%
    after 2, 77.1% after 10)."""
    monkeypatch.chdir(tmp_path)
    ds = _fashion_mnist()
    runs = {init: train("lenet", ds, TrainConfig(recipe="d2l", init=init, epochs=2, eval_every=2, device="cpu",
                                                 threads=1, out=f"runs/{init}"), progress=False)
            for init in ("default", "xavier")}
    stuck, learns = runs["default"].metrics[-1], runs["xavier"].metrics[-1]
    assert stuck["test_acc"] < 0.12 and stuck["train_loss"] > 2.29
    assert learns["test_acc"] > 0.4 and learns["train_loss"] < 2.0


@pytest.mark.parametrize("settings", [
    dict(optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4),   # the small-CNN recipe (Nesterov, fused)
    dict(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0),    # d2l's plain SGD
    dict(optimizer="adamw", lr=3e-3, momentum=0.9, weight_decay=0.05),
])
def test_convlabs_optimizer_steps_as_torchs_and_saves_the_same_state(settings):
    """make_optimizer's classes skip torch's dynamo wrappers: the weights after each step and the state
    dict must be torch's own, bit for bit, and a state saved by either loads into the other."""
    c = with_family_defaults(TrainConfig(model="lenet", **settings), "small")
    torch.manual_seed(0)
    ours_net = create_model("lenet-modern")
    torch_net = create_model("lenet-modern")
    torch_net.load_state_dict(ours_net.state_dict())
    ours = make_optimizer(ours_net, c)
    groups = [{**g, "params": [dict(torch_net.named_parameters())[n] for n, p in ours_net.named_parameters()
                               if any(p is q for q in g["params"])]} for g in ours.param_groups]
    cls = torch.optim.AdamW if settings["optimizer"] == "adamw" else torch.optim.SGD
    theirs = cls(groups)
    assert type(ours) is not cls and isinstance(ours, cls)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(3):
        for net, opt in ((ours_net, ours), (torch_net, theirs)):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), torch_net.parameters()))
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k][s], b["state"][k][s]) for k in a["state"] for s in a["state"][k])
    ours.load_state_dict(b)
    theirs.load_state_dict(a)


def test_a_training_run_does_not_import_torch_dynamo(tmp_path):
    """torch's optimizer wrappers import torch._dynamo (1-2 s of every command on a CPU); convlab's do not."""
    import subprocess
    import sys

    make_idx_dataset(tmp_path / "fm")
    code = ("import sys, torch; torch.set_num_threads(1); from convlab.training import TrainConfig, train; "
            f"train(config=TrainConfig(model='fastcnn', data='fashion-mnist', data_dir={str(tmp_path / 'fm')!r}, "
            f"epochs=1, batch_size=16, out={str(tmp_path / 'run')!r}, device='cpu'), progress=False); "
            "print('dynamo' if 'torch._dynamo' in sys.modules else 'eager')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "eager"
