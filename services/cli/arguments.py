"""Types for argparse that refuse a bad value while parsing, so it is a usage error (exit 2, and a
JSON error object in JSON mode) like every other bad command line, never a failure found later;
and the options several commands share."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer of at least 1 (``--limit``, ``--runs``)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def add_param_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``-p/--param KEY=VALUE`` (repeatable, into ``args.params``), as run, rerun and respond
    take their values."""
    parser.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE", help=help)
