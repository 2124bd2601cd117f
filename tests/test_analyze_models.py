"""Summaries of real-world model code against a real forward: d2l's Lazy layers, 1-D/3-D/transposed
convolutions, attention, tensors moved or created inside forward.

The oracle for every model is PyTorch itself: a forward of an initialised copy with hooks on every
module (output shapes per leaf), its parameters, and ``FlopCounterMode`` (MACs = FLOPs / 2).
"""

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.nn.parameter import is_lazy
from torch.utils.flop_counter import FlopCounterMode

import convlab
import convlab.errors


def real_forward(model, shape):
    """What torch says: {leaf name: output shape}, trainable params, running statistics, MACs."""
    shapes, hooks = {}, []
    for name, m in model.named_modules():
        if name and not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o, name=name: shapes.__setitem__(name, list(o.shape)) if isinstance(o, torch.Tensor)
                else None))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        out = model(torch.randn(*shape))
    for h in hooks:
        h.remove()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1].startswith("running_"))
    return shapes, trainable, stats, fc.get_total_flops() // 2, out


def assert_exact(model, shape, s=None):
    """convlab's summary of ``model`` equals a real forward of it, leaf by leaf."""
    s = s or convlab.summary(model, shape[1:], batch_size=shape[0])
    shapes, trainable, stats, macs, out = real_forward(model, shape)
    got = {r.name: r.output_shape for r in s.rows if r.leaf and r.name in shapes}
    assert got == shapes
    assert (s.trainable_params, s.non_trainable_params, s.macs) == (trainable, stats, macs)
    if isinstance(out, torch.Tensor):
        assert s.output_shape == list(out.shape)
    return s


# -- d2l's Lazy layers -----------------------------------------------------------------------

def d2l_lenet():
    return nn.Sequential(
        nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.LazyLinear(120), nn.Sigmoid(), nn.LazyLinear(84), nn.Sigmoid(), nn.LazyLinear(10))


def d2l_vgg(arch=((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)), num_classes=10):
    blocks = []
    for num_convs, out_channels in arch:
        layers = []
        for _ in range(num_convs):
            layers += [nn.LazyConv2d(out_channels, kernel_size=3, padding=1), nn.ReLU()]
        blocks.append(nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2)))
    return nn.Sequential(*blocks, nn.Flatten(), nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5), nn.LazyLinear(num_classes))


class D2LResidual(nn.Module):
    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1, self.bn2 = nn.LazyBatchNorm2d(), nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        return F.relu(Y + X)


def d2l_resnet18(num_classes=10):
    def block(num_residuals, num_channels, first_block=False):
        return nn.Sequential(*[D2LResidual(num_channels, use_1x1conv=True, strides=2) if i == 0 and not first_block
                               else D2LResidual(num_channels) for i in range(num_residuals)])
    b1 = nn.Sequential(nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3), nn.LazyBatchNorm2d(), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return nn.Sequential(b1, block(2, 64, first_block=True), block(2, 128), block(2, 256), block(2, 512),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes))


def _state(model):
    """Everything a summary must leave alone: classes, parameters (lazy or not, same objects), hooks."""
    return [(n, type(m), dict(m._parameters), dict(m._buffers), list(m._forward_pre_hooks),
             "forward" in m.__dict__, m.training) for n, m in model.named_modules()]


@pytest.mark.parametrize("make, shape, out", [
    (d2l_lenet, (1, 1, 28, 28), [1, 10]),
    (d2l_vgg, (1, 1, 224, 224), [1, 10]),
    (d2l_resnet18, (2, 1, 96, 96), [2, 10]),
])
def test_d2l_lazy_models_are_exact_and_stay_lazy(make, shape, out):
    torch.manual_seed(0)
    lazy = make()
    before = _state(lazy)
    s = convlab.summary(lazy, shape[1:], batch_size=shape[0])
    assert _state(lazy) == before  # same classes, same (uninitialised) parameter objects, same hooks
    assert all(is_lazy(p) for p in lazy.parameters())
    assert all(p.device.type == "cpu" for p in lazy.parameters())
    assert s.output_shape == out
    assert [r.type for r in s.rows if r.type.startswith("Lazy")]  # rows name the user's own layers
    real = make()
    with torch.no_grad():
        real(torch.zeros(*shape))  # the initialised copy: d2l's own dry run
    assert assert_exact(real, shape).rows and [r.output_shape for r in s.rows] == \
        [r.output_shape for r in convlab.summary(real, shape[1:], batch_size=shape[0]).rows]
    real_s = convlab.summary(real, shape[1:], batch_size=shape[0])
    assert (s.trainable_params, s.non_trainable_params, s.macs) == \
        (real_s.trainable_params, real_s.non_trainable_params, real_s.macs)


def test_lazy_module_called_twice_counts_once_and_a_lazy_model_can_be_summarised_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.LazyConv2d(3, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    m = Twice()
    a, b = convlab.summary(m, (3, 8, 8)), convlab.summary(m, (3, 8, 8))
    assert a.trainable_params == b.trainable_params == 3 * 3 * 9 + 3
    assert a.macs == 2 * 3 * 3 * 9 * 64
    assert is_lazy(m.conv.weight)


def test_a_lazy_layer_as_the_whole_model():
    m = nn.LazyLinear(10)
    s = convlab.summary(m, (5,), batch_size=3)
    assert (s.trainable_params, s.macs, s.output_shape, s.model) == (60, 150, [3, 10], "LazyLinear")
    assert is_lazy(m.weight) and type(m) is nn.LazyLinear


def test_lazy_model_keeps_working_for_real_afterwards():
    m = d2l_lenet()
    convlab.summary(m, (1, 28, 28))
    with torch.no_grad():
        assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # torch's own first forward still infers
    assert type(m[0]) is nn.Conv2d and m[0].in_channels == 1


# -- convolutions that are not 2-D, and transposed ones ---------------------------------------

CONVS = {1: (nn.Conv1d, nn.ConvTranspose1d), 2: (nn.Conv2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.ConvTranspose3d)}


@st.composite
def conv_cases(draw):
    nd = draw(st.sampled_from([1, 3, 2]))
    transposed = draw(st.booleans())
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, 1))
    size = tuple(draw(st.integers(d * (k - 1) + 1, 7)) for _ in range(nd))
    settings_ = dict(kernel_size=k, stride=s, padding=p, dilation=d, groups=groups,
                     bias=draw(st.booleans()))
    if transposed:
        op = settings_["output_padding"] = draw(st.integers(0, max(s, d) - 1))
        assume(all((n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1 for n in size))  # torch: an empty output
    return nd, transposed, c_in, c_out, settings_, size, draw(st.integers(1, 2))


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv_1d_3d_transposed_modules_macs_equal_flop_counter(case):
    nd, transposed, c_in, c_out, kw, size, batch = case
    torch.manual_seed(0)
    conv = CONVS[nd][transposed](c_in, c_out, **kw)
    model = nn.Sequential(conv, nn.ReLU())
    try:
        with torch.no_grad():
            empty = model(torch.zeros(batch, c_in, *size)).numel() == 0
    except RuntimeError:
        empty = True
    if empty:  # torch refuses, or gives an empty map: convlab refuses with its own error
        with pytest.raises(convlab.errors.ShapeError, match="ConvTranspose|Conv"):
            convlab.summary(model, (c_in, *size), batch_size=batch)
        return
    s = assert_exact(model, (batch, c_in, *size))
    assert s.macs > 0 and s.rows[0].macs == s.macs


class FunctionalConvs(nn.Module):
    """A video stem and a channel-attention (ECA-style) block written with the functional forms."""

    def __init__(self):
        super().__init__()
        self.w3 = nn.Parameter(torch.randn(4, 2, 3, 3, 3))
        self.w1 = nn.Parameter(torch.randn(1, 1, 3))
        self.wt = nn.Parameter(torch.randn(4, 2, 2, 2))

    def forward(self, x):  # (N, 2, T, H, W)
        x = F.conv3d(x, self.w3, stride=(1, 2, 2), padding=1)  # (N, 4, T, H/2, W/2)
        y = x.mean((2, 3, 4)).unsqueeze(1)  # (N, 1, 4)
        y = torch.sigmoid(F.conv1d(y, self.w1, padding=1)).transpose(1, 2)  # (N, 4, 1)
        x = x * y[..., None, None]
        x = x.mean(2)  # (N, 4, H/2, W/2)
        return F.conv_transpose2d(x, self.wt, stride=2)  # (N, 2, H, W)


def test_functional_conv1d_conv3d_conv_transpose2d_are_counted():
    s = assert_exact(FunctionalConvs(), (2, 2, 4, 8, 8))
    assert s.output_shape == [2, 2, 8, 8]
    assert s.macs == 2 * (4 * 2 * 27 * 4 * 4 * 4 + 1 * 3 * 4 + 4 * 2 * 4 * 4 * 4)


# -- attention ---------------------------------------------------------------------------------

class Attn(nn.Module):
    def __init__(self, e, heads, kdim=None, vdim=None, bias_kv=False, zero_attn=False, batch_first=True):
        super().__init__()
        self.kdim, self.vdim = kdim or e, vdim or e
        self.attn = nn.MultiheadAttention(e, heads, kdim=kdim, vdim=vdim, add_bias_kv=bias_kv,
                                          add_zero_attn=zero_attn, batch_first=batch_first)
        self.k = nn.Linear(e, self.kdim)
        self.v = nn.Linear(e, self.vdim)

    def forward(self, x):
        return self.attn(x, self.k(x), self.v(x))[0]  # need_weights=True: the path FlopCounterMode counts


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 2), st.integers(1, 6), st.booleans(), st.booleans(), st.booleans(),
       st.booleans())
def test_multihead_attention_macs_equal_flop_counter(head_dim, heads, length, other_dims, bias_kv, zero_attn,
                                                     batch_first):
    e = head_dim * heads
    kd = (e + 1, e + 2) if other_dims else (None, None)
    model = Attn(e, heads, *kd, bias_kv=bias_kv, zero_attn=zero_attn, batch_first=batch_first)
    s = assert_exact(model, (2, length, e))
    attn = next(r for r in s.rows if r.name == "attn")
    seen = []
    hook = model.attn.register_forward_hook(lambda m, i, o: seen.append([list(t.shape) for t in o if t is not None]))
    with torch.no_grad():
        model(torch.randn(2, length, e))
    hook.remove()
    assert attn.output_shape == seen[0]  # the output and the head-averaged weights
    assert attn.macs > 0 and any("attention" in rule for rule in s.rules)


class TinyViT(nn.Module):
    """A ViT in timm's style: patch embedding conv, class token, position embedding, pre-norm blocks of
    nn.MultiheadAttention and an MLP, a linear head on the class token."""

    def __init__(self, img=16, patch=4, dim=24, depth=2, heads=3, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(dim), "attn": nn.MultiheadAttention(dim, heads, batch_first=True),
            "norm2": nn.LayerNorm(dim),
            "mlp": nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))}) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, HW, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            h = b["norm1"](x)
            x = x + b["attn"](h, h, h)[0]
            x = x + b["mlp"](b["norm2"](x))
        return self.head(self.norm(x)[:, 0])


def test_vit_counts_its_attention():
    model = TinyViT()
    s = assert_exact(model, (2, 3, 16, 16))
    attn = [r for r in s.rows if r.type == "MultiheadAttention"]
    assert sum(r.macs for r in attn) > s.macs / 4  # the share a ViT used to lose
    assert all(r.trainable_params == sum(p.numel() for p in model.blocks[0]["attn"].parameters()) for r in attn)


# -- tensors moved or made inside forward ------------------------------------------------------

class PositionalEncoding(nn.Module):
    """The tutorials' sinusoidal encoding, made inside forward and moved to the weights' device."""

    def __init__(self, dim=8):
        super().__init__()
        self.proj = nn.Conv1d(3, dim, 1)

    def forward(self, x):  # (N, 3, L)
        x = self.proj(x)
        n, d, length = x.shape
        pos = torch.arange(length, dtype=torch.float32).unsqueeze(0)  # (1, L)
        freq = torch.exp(torch.arange(0, d, 2).float() * (-4.0 / d)).unsqueeze(1)  # (d/2, 1)
        pe = torch.zeros(d, length)
        pe[0::2] = torch.sin(freq * pos)
        pe[1::2] = torch.cos(freq * pos)
        pe = pe.to(self.proj.weight.device)
        mask = torch.ones(length, length).tril().to("cpu").cpu().to(x)  # moved, then to x's device and dtype
        return (x + pe) @ mask


def test_tensors_moved_inside_forward_and_factories_are_meta():
    model = PositionalEncoding()
    made = []

    class Spy(torch.overrides.TorchFunctionMode):  # every tensor the summary makes, wherever it is made
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                made.append((getattr(func, "__name__", ""), out.device.type))
            return out

    with Spy():
        s = convlab.summary(model, (3, 6), batch_size=2)
    assert s.output_shape == [2, 8, 6]
    assert s.trainable_params == 3 * 8 + 8 and s.macs == 2 * 3 * 8 * 6
    assert not [f for f, dev in made if f in ("zeros", "ones", "arange") and dev != "meta"]  # no activations
    assert model.proj.weight.device.type == "cpu"


def test_to_dtype_still_applies_on_meta():
    class Half(nn.Module):
        def forward(self, x):
            return x.to(torch.float64).cpu().to("cpu", torch.float16)

    assert convlab.summary(Half(), (2, 3, 3)).output_shape == [1, 2, 3, 3]


class InPlaceTemps(nn.Module):
    """In-place shape changes on tensors made inside forward (a mask, an index)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("scale", torch.ones(4))

    def forward(self, x):  # (N, 4)
        m = torch.tensor([1.0, 0.0, 1.0, 1.0])
        m.unsqueeze_(0)  # (1, 4)
        w = torch.ones(4, 1)
        w.t_()  # (1, 4)
        z = torch.zeros(2, 2)
        z.resize_(1, 4)
        self.scale.mul_(2.0)  # the user's buffer: never changed
        return self.fc(x) * m * w * z + x.unsqueeze(1).squeeze_(1)


def test_inplace_shape_changes_on_temporaries_apply_and_buffers_stay():
    model = InPlaceTemps()
    s = convlab.summary(model, (4,), batch_size=3)
    with torch.no_grad():
        expect = copy.deepcopy(model)(torch.zeros(3, 4)).shape
    assert s.output_shape == list(expect) == [3, 4]
    assert torch.equal(model.scale, torch.ones(4))


# -- what convlab does not count is named; the summary shows itself -----------------------------

class EinsumAttention(nn.Module):
    """Attention written with einsum and `x @ param`, as timm's and the tutorials' code does."""

    def __init__(self, dim=8):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mix = nn.Parameter(torch.randn(dim, dim))

    def forward(self, x):  # (N, L, D)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        a = torch.einsum("nld,nmd->nlm", q, k).softmax(-1)
        return torch.einsum("nlm,nmd->nld", a, v) @ self.mix


def test_uncounted_ops_are_named_in_a_footnote():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = EinsumAttention()

        def forward(self, x):
            return self.attn(x)

    s = convlab.summary(Net(), (5, 8))
    assert s.macs == 5 * 8 * 24  # the qkv linear; the einsums and the matmul are not counted ...
    assert s.uncounted == ("2 einsum calls in attn", "1 matmul call in attn")  # ... and say so
    assert "MACs not counted: 2 einsum calls in attn" in str(s)
    assert s.to_dict()["macs_not_counted"] == list(s.uncounted)
    plain = convlab.summary(nn.Sequential(nn.Linear(8, 4)), (8,))
    assert "MACs not counted" not in str(plain) and "macs_not_counted" not in plain.to_dict()


def test_repr_is_the_table_and_html_for_notebooks():
    s = convlab.summary(d2l_lenet(), (1, 28, 28))
    assert repr(s) == str(s) and "LazyConv2d" in repr(s) and len(repr(s)) < 6000
    assert s._repr_html_() == s.to_html() and s._repr_html_().startswith("<table")


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["mean", "sum", "amax", "amin"]),
       st.one_of(st.none(), st.integers(-4, 3), st.lists(st.integers(-4, 3), min_size=1, max_size=3, unique=True)),
       st.booleans())
def test_reductions_have_torchs_shapes(op, dim, keepdim):
    class Reduce(nn.Module):
        def forward(self, x):
            if dim is None:
                return getattr(x, op)()
            return getattr(x, op)(dim, keepdim=keepdim)

    x = torch.randn(2, 3, 4, 5)
    try:
        expect = list(Reduce()(x).shape)
    except (RuntimeError, IndexError):
        with pytest.raises(convlab.errors.ShapeError):
            convlab.summary(Reduce(), (3, 4, 5), batch_size=2)
        return
    assert convlab.summary(Reduce(), (3, 4, 5), batch_size=2).output_shape == expect


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(1, 12), st.booleans(), st.booleans())
def test_group_norm_refuses_what_torch_refuses(c_in, groups, c_module, affine, functional):
    """GroupNorm over C channels: torch refuses groups that do not divide C and weights of another size;
    the summary refuses the same models (naming the fix) and passes the others with torch's shape."""
    if c_module % groups:
        return  # nn.GroupNorm itself refuses to be made
    norm = nn.GroupNorm(groups, c_module, affine=affine)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, c_in, 3), norm

        def forward(self, x):
            x = self.conv(x)
            return F.group_norm(x, groups, norm.weight, norm.bias) if functional else self.norm(x)

    try:
        expect = list(Net()(torch.randn(2, 3, 7, 7)).shape)
    except (RuntimeError, ValueError):
        with pytest.raises(convlab.errors.ShapeError, match="num_groups|num_channels"):
            convlab.summary(Net(), (3, 7, 7), batch_size=2)
        return
    assert convlab.summary(Net(), (3, 7, 7), batch_size=2).output_shape == expect


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.booleans())
def test_layer_norm_refuses_what_torch_refuses(normalized, affine):
    """LayerNorm's normalized_shape must be the input's last dimensions (channels-last or flat features),
    as torch checks; the summary refuses the same and names the shape that fits."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm(normalized, elementwise_affine=affine))
    try:
        expect = list(model(torch.randn(1, 3, 8, 8)).shape)
    except RuntimeError:
        with pytest.raises(convlab.errors.ShapeError, match="normalized_shape"):
            convlab.summary(model, (3, 8, 8))
        return
    assert convlab.summary(model, (3, 8, 8)).output_shape == expect


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["matmul", "@", "bmm"]),
       st.lists(st.integers(1, 4), min_size=1, max_size=4), st.lists(st.integers(1, 4), min_size=1, max_size=4),
       st.sampled_from([torch.float32, torch.float64]), st.sampled_from([torch.float32, torch.float64]))
def test_matrix_products_have_torchs_shapes_and_errors(op, sa, sb, da, db):
    """matmul, @ and bmm: the summary's shape where torch gives one (and a footnote naming the uncounted
    call), a ShapeError where torch refuses."""
    class Product(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(*sb, dtype=db))

        def forward(self, x):
            a = x.reshape(sa).to(da)
            return a @ self.w if op == "@" else getattr(torch, op)(a, self.w)

    n = math.prod(sa)
    try:
        expect = list(Product()(torch.randn(n)).shape)
    except RuntimeError:
        with pytest.raises(convlab.errors.ShapeError):
            convlab.summary(Product(), (n,), batch_size=1)
        return
    s = convlab.summary(Product(), (n,), batch_size=1)
    assert s.output_shape == expect
    assert s.uncounted and ("matmul" in s.uncounted[0] or "bmm" in s.uncounted[0])
