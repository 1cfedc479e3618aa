"""Shared fixtures for the black-box tests: they run the real binary."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary():
    return os.environ.get("STRATUS_BIN", str(ROOT / "bin" / "stratus"))


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr


@pytest.fixture
def stratus():
    """Runs `stratus ARGS...` and returns exit code, stdout and stderr."""

    def run(*args, timeout=60, **kw):
        proc = subprocess.run([binary(), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, **kw)
        return Result(proc)

    return run


@pytest.fixture
def root():
    return ROOT
