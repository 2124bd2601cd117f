"""Spec → ``torch.nn.Module``: every ``in_channels`` and ``in_features`` computed, no Lazy layers.

The planner (``convlab.plan``) decides every name, shape and setting by arithmetic; this module is
the only place that turns a plan into torch modules. A leaf is made from its node's type, shapes and
settings (``Node.info``, and ``Node.layer`` for fc bias and dropout p); a container is its class
called with its children by name, ``CONTAINERS[node.type](**children)``, since the blocks in
``convlab.nn.blocks`` take their children by the names the planner gives them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch.nn as nn

from .nn import blocks
from .nn.pool import MaxPool2d
from .plan import Node, Plan, check_fits, plan
from .spec.layers import ACTIVATIONS


def _conv(node: Node) -> nn.Module:
    i = node.info
    return nn.Conv2d(i["in_channels"], node.out_shape[0], i["kernel"], i["stride"], i["padding"], i["dilation"],
                     i["groups"], i["bias"])


def _pool(cls: type) -> Callable[[Node], nn.Module]:
    def make(node: Node) -> nn.Module:
        i = node.info
        return cls(i["kernel"], i["stride"], i["padding"], ceil_mode=i["ceil_mode"])

    return make


def _activation(node: Node) -> nn.Module:
    return getattr(nn, node.type)()


# leaf modules by node type: node -> module
LEAVES: dict[str, Callable[[Node], nn.Module]] = {
    "Conv2d": _conv,
    "BatchNorm2d": lambda node: nn.BatchNorm2d(node.in_shape[0]),
    "BatchNorm1d": lambda node: nn.BatchNorm1d(node.in_shape[0]),
    # nn.MaxPool2d with a faster CPU path for 2x2 pools on few channels
    "MaxPool2d": _pool(MaxPool2d),
    "AvgPool2d": _pool(nn.AvgPool2d),
    "GlobalAvgPool": lambda node: blocks.GlobalAvgPool(),
    "Flatten": lambda node: nn.Flatten(),
    "Linear": lambda node: nn.Linear(node.in_shape[0], node.out_shape[0], node.layer.bias),
    "Dropout": lambda node: nn.Dropout(node.layer.p),
    "ShortcutA": lambda node: blocks.ShortcutA(node.in_shape[0], node.out_shape[0], node.info["stride"][0]),
    **{cls: _activation for cls in ACTIVATIONS.values()},
}

# containers by node type: called with the built children as keywords, by their planned names
CONTAINERS: dict[str, Callable[..., nn.Module]] = {
    "Sequential": lambda **children: nn.Sequential(OrderedDict(children)),
    "BasicBlock": blocks.BasicBlock,
    "PlainBlock": blocks.PlainBlock,
    "Bottleneck": blocks.Bottleneck,
    "Residual": blocks.Residual,
    "SeparableConv2d": blocks.SeparableConv2d,
}


def build_node(node: Node) -> nn.Module:
    """The module for one planned node; children first, in call order (so seeded weights stay the same).

    A child marked ``reuse`` is a second call of a module already built (the block's ``relu``).
    """
    if not node.children:
        return LEAVES[node.type](node)
    children = {child.name.rsplit(".", 1)[-1]: build_node(child) for child in node.children if not child.reuse}
    return CONTAINERS[node.type](**children)


def build_plan(p: Plan):
    """Instantiate a plan as a :class:`~convlab.nn.blocks.SpecNet` (refused first when its parameters do not
    fit in memory)."""
    check_fits(p)
    mods = OrderedDict((n.name, build_node(n)) for n in p.nodes)
    return blocks.SpecNet(mods, spec=p.spec.to_text(), input_shape=p.input_shape, notes=p.notes)


def build(spec, input_shape=None, num_classes: int | None = None):
    """Build a spec (text, path, YAML structure or :class:`~convlab.spec.Spec`) into a model.

    ``input_shape`` is (C, H, W); it may be left out when the spec begins with ``input(C,H,W)``.
    ``num_classes`` replaces the width of the last ``fc`` (a one-unit head on two classes is kept as a
    binary one; see :func:`convlab.plan._fit_head`). Shape bugs raise ``ShapeError`` before
    any tensor is computed.

    >>> m = build("conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(128) relu fc(10)",
    ...           input_shape=(3, 32, 32))
    >>> m.fc1.in_features
    2048

    A zoo name (``"resnet20"``, ``"resnet20:shortcut=B"``) builds that model, for its own input unless
    ``input_shape`` says otherwise.
    """
    if isinstance(spec, str):
        from . import zoo

        if zoo.is_zoo_name(spec.strip()):
            spec, entry = zoo.spec_for(spec.strip())
            input_shape = input_shape if input_shape is not None else entry.input_shape
    return build_plan(plan(spec, input_shape, num_classes))
