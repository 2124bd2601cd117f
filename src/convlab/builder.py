"""Spec → ``torch.nn.Module``: every ``in_channels`` and ``in_features`` computed, no Lazy layers."""

from __future__ import annotations

from collections import OrderedDict

from .plan import Node, Plan, plan


def _instantiate(node: Node):
    if not node.children:
        return node.factory()
    built = OrderedDict()
    for child in node.children:
        if child.reuse:
            continue
        built[child.name.rsplit(".", 1)[-1]] = _instantiate(child)
    return node.factory(built)


def build_plan(p: Plan):
    """Instantiate a plan as a :class:`~convlab.nn.blocks.SpecNet`."""
    from .nn.blocks import SpecNet

    mods = OrderedDict((n.name, _instantiate(n)) for n in p.nodes)
    return SpecNet(mods, spec=p.spec.to_text(), input_shape=p.input_shape)


def build(spec, input_shape=None, num_classes: int | None = None):
    """Build a spec (text, path, YAML structure or :class:`~convlab.spec.Spec`) into a model.

    ``input_shape`` is (C, H, W); it may be left out when the spec begins with ``input(C,H,W)``.
    ``num_classes`` replaces the width of the last ``fc``. Shape bugs raise ``ShapeError`` before
    any tensor is computed.

    >>> m = build("conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(128) relu fc(10)",
    ...           input_shape=(3, 32, 32))
    >>> m.fc1.in_features
    2048
    """
    return build_plan(plan(spec, input_shape, num_classes))
