"""Every option of every convlab command says what it does and what it is when not given."""

from __future__ import annotations

import argparse

import pytest

from convlab.cli import build_parser

FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
         argparse._CountAction)
SKIP = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return {"convlab": p, **sub.choices}


def _problems(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in parser._actions:
        if isinstance(a, SKIP):
            continue
        name = "/".join(a.option_strings) or a.dest
        if not a.help or a.help is argparse.SUPPRESS:
            out.append(f"{name}: no help text")
            continue
        # an option (or optional positional) that can be left out must say what it is then;
        # a plain on/off flag is off unless given, which its name already says (--json, --ceil)
        may_be_left_out = (a.option_strings and not a.required) or a.nargs in ("?", "*")
        says_flag_default = isinstance(a, FLAGS) and a.default in (False, None) and isinstance(
            a, (argparse._StoreTrueAction, argparse._StoreConstAction))
        if may_be_left_out and not says_flag_default and "default" not in a.help.lower():
            out.append(f"{name}: help {a.help!r} does not show the default")
    return out


def test_every_subcommand_is_walked():
    names = set(_subparsers())
    assert {"size", "solve", "chain", "summary", "check", "train", "eval", "viz", "compare", "report",
            "zoo", "data", "tour"} <= names


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_option_has_help_and_shows_its_default(name):
    assert _problems(_subparsers()[name]) == []


def test_the_walk_catches_a_missing_help_and_a_missing_default():
    p = argparse.ArgumentParser()
    p.add_argument("--quiet-one", type=int, default=3)
    p.add_argument("--silent", type=int, default=3, help="how many")
    p.add_argument("--fine", type=int, default=3, help="how many (default 3)")
    p.add_argument("--flag", action="store_true", help="turn it on")
    got = _problems(p)
    assert got == ["--quiet-one: no help text", "--silent: help 'how many' does not show the default"]


def test_family_defaults_in_train_help_are_the_recipes():
    from convlab.training.config import FAMILY_DEFAULTS

    text = _subparsers()["train"].format_help()
    flat = " ".join(text.split())
    fast, small, cifar = FAMILY_DEFAULTS["fast"], FAMILY_DEFAULTS["small"], FAMILY_DEFAULTS["resnet-cifar"]
    assert f"(default: {fast['epochs']} fastcnn, {small['epochs']} other small CNNs, {cifar['epochs']} CIFAR" in flat
    assert f"(default: {fast['lr']} fastcnn, {small['lr']} other small CNNs, {cifar['lr']} CIFAR" in flat
    assert f"(default: {small['batch_size']} small CNNs, {cifar['batch_size']} CIFAR" in flat  # the same for both
