"""Weight initialisation for ``--init``: torch's default, d2l's ``init_cnn`` (Xavier), or Kaiming.

Only the weights of ``nn.Conv2d`` and ``nn.Linear`` layers are drawn again; biases, BatchNorm and every
other parameter keep what their module's constructor gave them, as d2l's ``init_cnn`` does.
"""

from __future__ import annotations

import torch.nn as nn

from .config import INITS


def init_weights(model: nn.Module, how: str) -> int:
    """Re-draw the conv and linear weights of ``model`` in place; returns how many tensors were drawn.

    - ``default``: nothing changes — torch's own init (Kaiming-uniform with a = √5, i.e. U(±1/√fan_in)).
    - ``xavier``: ``xavier_uniform_`` (Glorot & Bengio 2010), U(±√(6 / (fan_in + fan_out))) — d2l's ``init_cnn``.
    - ``kaiming``: ``kaiming_normal_`` for ReLU nets (He et al. 2015, eq. 10), N(0, 2 / fan_in).
    """
    if how not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {how!r}")
    if how == "default":
        return 0
    n = 0
    for m in model.modules():
        if type(m) in (nn.Conv2d, nn.Linear):  # exact types, as init_cnn tests them
            if how == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            n += 1
    return n
