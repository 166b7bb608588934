"""What the README tells a new user to type or open exists: every `flywheel SUBCOMMAND` it
names is a command of the CLI, every relative link is a file of the repository, every
`make TARGET` is a Makefile target (issue 20, item 9). Links to running servers (Prometheus's
`/classic/alerts` on Debian's build, Prefect's UI) are checked by the tests that start them."""

from __future__ import annotations

import re

import typer.main

from flywheel.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
# `flywheel WORD` as a command, not `kubectl -n flywheel create` or a path or a model name.
SUBCOMMAND = re.compile(r"(?<![\w./-])(?<!-n )flywheel ([a-z][a-z-]*)(?=[\s`'\"\]|)]|$)")


def test_every_subcommand_the_readme_names_exists() -> None:
    named = set(SUBCOMMAND.findall(README))
    commands = set(typer.main.get_command(app).commands)
    assert {"run", "serve", "monitor", "status"} <= named  # the pattern still finds them
    assert named - commands == set()


def test_every_relative_link_resolves_to_a_file() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    relative = [link.split("#")[0] for link in links
                if not link.startswith(("http://", "https://", "#", "mailto:"))]
    missing = [link for link in relative if not (REPO / link).exists()]
    assert missing == []


def test_every_make_target_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    named = set(re.findall(r"(?:^|`)make ([a-z][\w-]*)", README, re.M))
    assert {"run", "test"} <= named
    assert named - targets == set()


def test_the_pattern_skips_what_is_not_a_subcommand() -> None:
    text = "kubectl -n flywheel create x; `flywheel.serving` and flywheel-churn; flywheel ui --port"
    assert SUBCOMMAND.findall(text) == ["ui"]
