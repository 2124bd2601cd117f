"""The top-level API: lazily imported names that stay what they are after any submodule import."""

import importlib
import pkgutil
import subprocess
import sys

import convlab


def test_top_level_names_survive_importing_every_submodule():
    for info in pkgutil.walk_packages(convlab.__path__, "convlab."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    assert convlab.train is importlib.import_module("convlab.training.loop").train
    assert convlab.build is importlib.import_module("convlab.builder").build
    assert convlab.summary is importlib.import_module("convlab.analyze").summary
    assert convlab.load_dataset is importlib.import_module("convlab.data.registry").load
    assert isinstance(convlab.TrainConfig(), convlab.TrainConfig)
    for name in convlab.__all__:
        assert getattr(convlab, name) is not None, name


def test_import_and_arithmetic_do_not_import_torch():
    code = "import sys, convlab; convlab.conv_out(28, 5, 1, 2); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
