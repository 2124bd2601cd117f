"""The summary's fast paths give the plain path's rows, field by field.

The nn.Module path has fast paths (an nn.Sequential's children called without torch's ``__call__``
when they have no hooks, its known leaves answered from carried shapes with no meta tensor between
them, the module walk without torch's generators); ``convlab.analyze.trace.plain_path()`` turns them
off. Every summary here is made both ways and compared on every field a user sees (names, types,
depths, shapes, parameters, MACs, receptive fields, leaf flags, layer settings, totals, footnotes) and
on the errors raised. The plain path itself is checked against PyTorch by test_analyze_corpus.py,
test_analyze.py and test_analyze_models.py.
"""

import pytest
import torch
import torch.nn as nn
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convlab
from convlab import zoo
from convlab.analyze import rules, trace
from convlab.errors import ShapeError
from model_corpus import CORPUS, third_party
from strategies import chains


def everything(s):
    """Every field of a summary that a user or the checks can read."""
    rows = [(r.name, r.type, r.depth, r.input_shape, r.output_shape, r.trainable_params, r.non_trainable_params,
             r.macs, r.receptive_field, r.leaf, r.own, repr(sorted(r.info.items()))) for r in s.rows]
    return (s.model, tuple(s.input_shape), s.batch_size, rows, s.trainable_params, s.non_trainable_params, s.macs,
            s.param_bytes, s.activation_bytes, s.output_shape, s.rules, s.uncounted)


def both(model, shape, batch_size=1):
    """(fast summary, plain summary) of one model, or the two errors' messages."""
    out = []
    for plain in (False, True):
        try:
            if plain:
                with trace.plain_path():
                    s = convlab.summary(model, shape, batch_size=batch_size)
            else:
                s = convlab.summary(model, shape, batch_size=batch_size)
            out.append(everything(s))
        except ShapeError as e:
            out.append(("error", str(e)))
    return out


class Counting:
    """Counts the leaf calls answered inside a chain (the fast path taken), for the duration of a with."""

    def __enter__(self):
        self.n = 0
        self.orig = trace._Tracer._leaf

        def leaf(tracer, *a, **k):
            self.n += 1
            return self.orig(tracer, *a, **k)

        trace._Tracer._leaf = leaf
        return self

    def __exit__(self, *exc):
        trace._Tracer._leaf = self.orig


MODELS = CORPUS + third_party(imagenet=False)


@pytest.mark.parametrize("name,make,shape", MODELS, ids=[m[0] for m in MODELS])
def test_corpus_fast_path_equals_plain_path(name, make, shape):
    torch.manual_seed(0)
    model = make().eval()
    fast, plain = both(model, shape[1:], batch_size=2)
    assert fast == plain


def test_fast_path_is_taken_and_leaves_nothing_behind():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4))
    before = {n: dict(m.__dict__) for n, m in model.named_modules()}
    with Counting() as c:
        convlab.summary(model, (3, 16, 16))
    assert c.n >= 6  # conv, bn, relu, the inner conv and relu, pool, flatten, linear: answered in chains
    assert {n: dict(m.__dict__) for n, m in model.named_modules()} == before
    with Counting() as c, trace.plain_path():
        convlab.summary(model, (3, 16, 16))
    assert c.n == 0


def test_zoo_modules_fast_path_equals_plain_path():
    for name in zoo.list_models():
        model = convlab.create_model(name).eval()
        shape = zoo.get(name).input_shape
        fast, plain = both(model, shape)
        assert fast == plain, name


@settings(max_examples=40, deadline=None)
@given(chains())
def test_generated_chains_fast_path_equals_plain_path(case):
    shape, _, model = case
    fast, plain = both(model.eval(), shape)
    assert fast == plain


class Tagged(nn.Module):
    """A module of its own inside a Sequential: traced, not answered by a rule."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.conv(x) * 2 + x


@st.composite
def sequentials(draw):
    """nn.Sequentials mixing known leaves, shared modules, nested Sequentials, custom modules, modules
    with hooks, 1-D tails and wrong channel counts (errors must be the same on both paths)."""
    c = draw(st.integers(1, 4))
    h = draw(st.integers(4, 12))
    layers, cur, flat = [], c, False
    shared = None
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["conv", "bn", "relu", "id", "pool", "nested", "custom", "hooked", "shared",
                                     "wrong", "flat", "drop"]))
        if flat:
            kind = draw(st.sampled_from(["relu", "id", "drop", "bn1", "linear"]))
        if kind == "conv":
            out = draw(st.integers(1, 6))
            layers.append(nn.Conv2d(cur, out, draw(st.sampled_from([1, 3])), padding=draw(st.integers(0, 1))))
            cur = out
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(cur))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "id":
            layers.append(nn.Identity())
        elif kind == "drop":
            layers.append(nn.Dropout(0.1))
        elif kind == "pool":
            layers.append(nn.MaxPool2d(2, ceil_mode=True) if draw(st.booleans()) else nn.AvgPool2d(3, 1, 1))
        elif kind == "nested":
            layers.append(nn.Sequential(nn.Conv2d(cur, cur, 3, padding=1), nn.BatchNorm2d(cur), nn.ReLU()))
        elif kind == "custom":
            layers.append(Tagged(cur))
        elif kind == "hooked":
            m = nn.Conv2d(cur, cur, 1)
            m.register_forward_hook(lambda mod, i, o: o + 1)  # changes nothing shape-wise; the hook must run
            layers.append(m)
        elif kind == "shared":
            if shared is None or shared.in_channels != cur:
                shared = nn.Conv2d(cur, cur, 3, padding=1)
            layers.append(shared)
        elif kind == "wrong":
            layers.append(nn.BatchNorm2d(cur + 1))
        elif kind == "flat":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            flat = True
        elif kind == "bn1":
            layers.append(nn.BatchNorm1d(cur))
        elif kind == "linear":
            out = draw(st.integers(1, 6))
            layers.append(nn.Linear(cur, out))
            cur = out
    return (c, h, h), nn.Sequential(*layers)


@settings(max_examples=80, deadline=None)
@given(sequentials(), st.integers(1, 3))
def test_generated_sequentials_fast_path_equals_plain_path(case, batch):
    shape, model = case
    fast, plain = both(model.eval(), shape, batch)
    assert fast == plain


def test_hooks_are_honoured_on_the_fast_path():
    seen = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    model[1].register_forward_pre_hook(lambda m, i: seen.append("pre"))
    fast, plain = both(model, (3, 8, 8))
    assert fast == plain and seen == ["pre", "pre"]
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
    try:
        seen.clear()
        convlab.summary(model, (3, 8, 8))
        assert seen.count("Conv2d") == 2  # every module's call went through torch: the global hook ran
    finally:
        handle.remove()


def test_carried_shape_stands_for_its_tensor():
    x = torch.empty((2, 3, 5, 7), device="meta")
    x._cl_rf = ((3, 1, 0.0), (3, 1, 0.0))
    c = rules.Carried.of(x)
    assert c.tensor() is x and c.dim() == 4 and c.shape == x.shape
    out = rules._meta((2, 4, 5, 7), c, "global")
    t = out.tensor()
    assert isinstance(t, torch.Tensor) and t.is_meta and list(t.shape) == [2, 4, 5, 7] and t._cl_rf == "global"
    assert rules.Carried.of(torch.zeros(2)) is None and rules.Carried.of((x,)) is None


# -- the spec path: a spec line parsed once, a stage's repeated convs planned once --------------------

class _Forgetful(dict):
    """A memo that keeps nothing: the planner then works out every conv again."""

    def __setitem__(self, key, value):
        pass


def spec_both(spec, shape, batch_size=1, monkeypatch=None):
    import convlab.plan as plan_mod

    fast = everything(convlab.summary(spec, shape, batch_size=batch_size))
    init = plan_mod._Planner.__init__

    def forgetful(self):
        init(self)
        self._convs = _Forgetful()

    monkeypatch.setattr(plan_mod._Planner, "__init__", forgetful)
    try:
        plain = everything(convlab.summary(spec, shape, batch_size=batch_size))
    finally:
        monkeypatch.setattr(plan_mod._Planner, "__init__", init)
    return fast, plain


def test_zoo_specs_conv_memo_changes_nothing(monkeypatch):
    for name in zoo.list_models():
        fast, plain = spec_both(name, zoo.get(name).input_shape, 2, monkeypatch)
        assert fast == plain, name


@settings(max_examples=40, deadline=None)
@given(chains(), st.integers(1, 3))
def test_generated_specs_conv_memo_changes_nothing(case, repeat):
    import convlab.plan as plan_mod

    shape, text, _ = case
    # the chain repeated: the same convs again on (often) the same shapes; some repeats do not fit
    text = " ".join([text] * repeat)
    try:
        fast = everything(convlab.summary(text, shape))
    except ShapeError as e:
        fast = str(e)
    init = plan_mod._Planner.__init__

    def forgetful(self):
        init(self)
        self._convs = _Forgetful()

    plan_mod._Planner.__init__ = forgetful
    try:
        try:
            plain = everything(convlab.summary(text, shape))
        except ShapeError as e:
            plain = str(e)
    finally:
        plan_mod._Planner.__init__ = init
    assert fast == plain


def test_a_spec_line_is_parsed_once_and_errors_are_not_kept():
    from convlab.errors import SpecError
    from convlab.spec import parse

    text = "conv(7,3,p=1) bn relu gap flatten fc(3)"
    assert parse(text) is parse(text)
    assert parse(text) is not parse(text + " ")
    for _ in range(2):  # raised each time: a bad line is never remembered as a Spec
        with pytest.raises(SpecError):
            parse("conv(7,3,p=1) nosuchlayer")
    with pytest.raises(Exception):
        parse(text).layers[0].out = 8  # frozen: the Spec shared by both callers cannot be changed


@settings(max_examples=40, deadline=None)
@given(chains(), st.integers(1, 2))
def test_built_specs_fast_path_equals_plain_path(case, batch):
    """Specs built by convlab (its SpecNet, BasicBlock, Residual, SeparableConv2d: answered from shapes on
    the fast path) summarise as on the plain path."""
    shape, text, _ = case
    try:
        model = convlab.build(text, shape).eval()
    except ShapeError:  # a generated chain that does not fit its input (the spec tests cover the message)
        assume(False)
    fast, plain = both(model, shape, batch)
    assert fast == plain


def test_convlab_blocks_are_followed_only_while_they_run_their_own_forward(monkeypatch):
    from convlab.nn import blocks

    model = convlab.create_model("resnet20").eval()
    with Counting() as c:
        fast = everything(convlab.summary(model, (3, 32, 32)))
    assert c.n > 50  # the blocks' convs, norms and relus answered inside the chains

    def forward(self, x):  # a user's change to the block: the tracer must run it, not convlab's program
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))

    monkeypatch.setattr(blocks.BasicBlock, "forward", forward)
    changed = everything(convlab.summary(model, (3, 32, 32)))
    with trace.plain_path():
        assert changed == everything(convlab.summary(model, (3, 32, 32)))
    assert changed != fast
