"""The bounds convlab puts on what it is given, in one place.

Every input is checked against these before any work is done on it, so a short input can neither
hang convlab nor make it eat the machine's memory: a spec of a few characters could otherwise ask
for a billion layers (``relu x 1000000000``), a number with thousands of digits, or brackets nested
ten thousand deep. What is over a limit is refused with an error that names the limit and its value.
The command line, the Python API and the playground (``convlab serve``) read the same numbers.

The numeric limits are far beyond any model that can be built: a CIFAR ResNet-1202 is about 1,200
layers and 2,500 characters of spec; the largest integer in the zoo is ImageNet's 1000 classes.
"""

from __future__ import annotations

import os

#: Characters of one spec (text or a spec file); the CLI and the Python API.
MAX_SPEC_CHARS = 1_000_000
#: Characters of a spec typed into the playground (ResNet-110's spec is about 2,100).
PLAYGROUND_SPEC_CHARS = 20_000
#: Layers of a spec once every repeat is expanded, counting the layers inside blocks and stages.
MAX_LAYERS = 20_000
#: One repeat count (``relu x N``, ``x: N`` in YAML).
MAX_REPEAT = 10_000
#: Brackets ``( [`` (or YAML ``body:`` lists) nested inside one another.
MAX_NESTING = 50
#: Any integer in a spec or an option: sizes, channels, kernels, strides, paddings, repeats.
#: 2**31 - 1 is the largest size torch's convolution kernels index (and far beyond any real one).
MAX_INT = 2**31 - 1
#: Digits of one number before it is converted (Python itself refuses past 4,300).
MAX_DIGITS = 10
#: Steps of a ``convlab chain``.
MAX_CHAIN_STEPS = 10_000
#: (kernel, stride, dilation) combinations one ``convlab solve`` tries, and solutions it lists.
MAX_SOLVE_COMBINATIONS = 1_000_000
MAX_SOLUTIONS = 100_000
#: The largest input the playground plans for (per side, and channels).
PLAYGROUND_INPUT_SIDE = 4096
PLAYGROUND_INPUT_CHANNELS = 4096
#: Boxes of a graph the playground lays out with Graphviz, and the seconds it gives the layout
#: (ResNet-110 at full depth is about 340 boxes and lays out in well under a second).
PLAYGROUND_GRAPH_NODES = 1_500
PLAYGROUND_DRAW_SECONDS = 10.0
#: Bytes one dataset file may decompress to (Fashion-MNIST's largest is 47 MB; CIFAR-100's 150 MB).
MAX_DATA_FILE_BYTES = 4 << 30


def check_int(value: int, what: str, error=None) -> int:
    """``value`` if it is at most :data:`MAX_INT`; else ``error`` (default SpecError) naming the limit."""
    if value > MAX_INT:
        from .errors import SpecError

        raise (error or SpecError)(f"{what} is {_short(value)}, beyond convlab's limit of {MAX_INT:,} "
                                   f"(2**31 - 1) for any size or count")
    return value


def _short(value: int) -> str:
    if abs(value) < 10**24:
        return f"{value:,}"
    return f"a number of about {int(value.bit_length() * 0.30103) + 1:,} digits"  # str() of it may be refused


def available_memory() -> int:
    """Bytes this process can still allocate: the system's available memory (``MemAvailable``), less
    than that when an address-space limit (``ulimit -v``) leaves less room."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 40  # unknown: assume plenty; torch reports what it cannot allocate
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = _address_space_used()
            if used is not None:
                avail = min(avail, max(0, soft - used))
    except (ImportError, OSError, ValueError):
        pass
    return avail


def _address_space_used() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gib(n: int) -> str:
    """Bytes as a short human figure: '3.2 GB', '512 MB', '4.0 TB'."""
    for unit, f in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n} bytes"
