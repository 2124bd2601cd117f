"""The fuzz campaign (tests/fuzzing.py) on a small fixed budget: generated specs, YAML/JSON, spec files, command
lines, playground calls, corrupted datasets and run directories. Any foreign exception, hang, stray file or
executed payload fails the test with the input that caused it.

``pytest -m slow -k fuzz`` runs 20,000; a bigger campaign: ``nice -n 19 python tests/fuzzing.py --examples 50000 --seed 1``. Set ``CONVLAB_FUZZ_SEED`` to
run this budget on another part of the input space.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fuzzing  # noqa: E402

EXAMPLES = 1500
SEED = int(os.environ.get("CONVLAB_FUZZ_SEED", "0"))


@pytest.mark.parametrize("examples", [EXAMPLES, pytest.param(20_000, marks=pytest.mark.slow)])
def test_a_fixed_budget_of_generated_input_finds_nothing(tmp_path, examples):
    out = tmp_path / "result.json"
    # its own process: the campaign sets an address-space limit, which must not outlive it
    proc = subprocess.run([sys.executable, str(Path(fuzzing.__file__)), "--examples", str(examples),
                           "--seed", str(SEED), "--json", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CONVLAB_FUZZ_TIME_LIMIT": "5"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["inputs"] >= examples * 0.9  # the budget ran (a few generated command lines are skipped)
    assert set(result["by_target"]) == {"spec", "yaml-json", "spec-file", "cli", "api", "data", "run-files"}
    shown = "\n".join(f"{f['target']} {f['kind']}: {f['input'][:300]}\n{f['detail'][-800:]}"
                      for f in result["findings"][:5])
    assert result["findings"] == [], f"seed {SEED}: {len(result['findings'])} findings\n{shown}"
    assert result["stray_files"] == []


def test_the_harness_reports_a_foreign_exception_a_hang_and_an_executed_payload(tmp_path, monkeypatch):
    from convlab.errors import SpecError

    monkeypatch.setattr(fuzzing, "TIME_LIMIT_S", 0.2)
    c = fuzzing.Campaign(tmp_path)

    def refuse():
        raise SpecError("a clear refusal")

    def crash():
        return {}["missing"]

    def hang():
        while True:
            pass

    def payload():
        c.marker.write_text("ran")

    c.call("t", "refused", refuse)
    assert c.findings == []  # a ConvlabError is the expected outcome
    c.call("t", "crash", crash)
    c.call("t", "hang", hang)
    c.call("t", "payload", payload)
    assert [(f["input"], f["kind"]) for f in c.findings] == [("'crash'", "KeyError"), ("'hang'", "hang"),
                                                               ("'payload'", "marker")]
    assert not c.marker.exists()
    assert c.inputs["t"] == 4


@pytest.mark.parametrize("argv", [["size", "conv", "--in", "28", "--kernel", "5"], ["size", "conv", "--in", "x"],
                                  ["zoo", "["]])
def test_the_cli_target_accepts_clean_exits(argv, tmp_path):
    c = fuzzing.Campaign(tmp_path)
    c.call("cli", argv, c._main, argv)
    assert c.findings == [] and c.inputs["cli"] == 1


def test_the_cli_target_flags_a_traceback(tmp_path, monkeypatch):
    import convlab.cli

    def noisy(argv):
        print("Traceback (most recent call last):\n  boom", file=sys.stderr)
        return 1

    monkeypatch.setattr(convlab.cli, "main", noisy)
    c = fuzzing.Campaign(tmp_path)
    c.call("cli", ["summary", "relu"], c._main, ["summary", "relu"])
    assert [f["kind"] for f in c.findings] == ["AssertionError"]


def test_generated_specs_stay_small():
    import random

    r = random.Random(0)
    sizes = sorted(len(fuzzing.spec_text(r)) for _ in range(3000))
    assert sizes[len(sizes) // 2] < 400 and sizes[-1] < 200_000  # the nesting cap keeps the generator cheap
