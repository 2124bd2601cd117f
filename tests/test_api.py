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
    training, loop = importlib.import_module("convlab.training"), importlib.import_module("convlab.training.loop")
    assert training.evaluate is loop.evaluate and callable(training.evaluate)
    assert isinstance(convlab.TrainConfig(), convlab.TrainConfig)
    for name in convlab.__all__:
        assert getattr(convlab, name) is not None, name


def test_import_and_arithmetic_do_not_import_torch():
    code = "import sys, convlab; convlab.conv_out(28, 5, 1, 2); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_training_evaluate_is_one_function_whatever_is_imported_first():
    # it once became the module training/evaluate.py as soon as that was imported; read before and after
    # every submodule is imported, in a fresh interpreter, it is the loop's evaluation function
    code = ("import importlib, pkgutil, convlab, convlab.training as t\n"
            "before = t.evaluate\n"
            "for info in pkgutil.walk_packages(convlab.__path__, 'convlab.'):\n"
            "    if not info.name.endswith('__main__'): importlib.import_module(info.name)\n"
            "loop = importlib.import_module('convlab.training.loop')\n"
            "print(before is t.evaluate is loop.evaluate, callable(t.evaluate))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def test_cli_help_does_not_import_torch():
    # the train/eval/viz choices come from convlab.training.config, which must stay torch-free
    code = ("import sys, contextlib, io, convlab.cli as c\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for cmd in ([], ['train'], ['eval'], ['viz'], ['compare'], ['report']):\n"
            "        try: c.main(cmd + ['--help'])\n"
            "        except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
