"""Transcript tests in etcd's data-driven style: each tests/raft/testdata/*.txt file drives a
deterministic in-memory cluster command by command (tests/support/raft_interaction.py) and
holds the expected output of every command. FAULTLINE_REWRITE=1 rewrites the files with the
actual outputs (then read the diff: it is the behaviour change).

The runner itself is tested too: a wrong expectation fails with the file, line and a diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.raft import rand
from tests.support.datadriven import Case, DataDrivenError, parse, run_file
from tests.support.raft_interaction import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"


def run_transcript(path: Path, rewrite: bool | None = None) -> None:
    rand.seed(0)  # election timeouts are randomized: every file starts from the same seed
    with InteractionEnv() as env:
        run_file(path, env.handle, rewrite=rewrite)


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_transcript(path: Path) -> None:
    run_transcript(path)


def test_there_are_transcripts() -> None:
    assert len(list(TESTDATA.glob("*.txt"))) >= 4


# ---------------------------------------------------------------- the runner itself
ELECTION = """\
# a comment, kept by rewrites
add-nodes 3 voters=(1, 2, 3)
----
{add}

campaign 1
----
ok

raft-state
----
{state}
"""


def _write(tmp_path: Path, add: str, state: str) -> Path:
    p = tmp_path / "election.txt"
    p.write_text(ELECTION.format(add=add, state=state))
    return p


ADD = """\
1: StateFollower Term:1 Commit:3 Voters:(1 2 3)
2: StateFollower Term:1 Commit:3 Voters:(1 2 3)
3: StateFollower Term:1 Commit:3 Voters:(1 2 3)"""
STATE = """\
1: StateCandidate (Voter) Term:2 Lead:0
2: StateFollower (Voter) Term:1 Lead:0
3: StateFollower (Voter) Term:1 Lead:0"""


def test_runner_passes_a_right_expectation(tmp_path: Path) -> None:
    run_transcript(_write(tmp_path, ADD, STATE), rewrite=False)


def test_runner_fails_a_wrong_expectation_with_position_and_diff(tmp_path: Path) -> None:
    wrong = STATE.replace("StateCandidate", "StateLeader")
    p = _write(tmp_path, ADD, wrong)
    with pytest.raises(AssertionError) as e:
        run_transcript(p, rewrite=False)
    msg = str(e.value)
    assert f"{p}:12: output of 'raft-state' differs" in msg
    assert "-1: StateLeader (Voter) Term:2 Lead:0" in msg
    assert "+1: StateCandidate (Voter) Term:2 Lead:0" in msg


def test_rewrite_replaces_only_the_outputs(tmp_path: Path) -> None:
    p = _write(tmp_path, "stale", "stale\nand more")
    run_transcript(p, rewrite=True)
    assert p.read_text() == ELECTION.format(add=ADD, state=STATE)
    run_transcript(p, rewrite=False)


def test_blank_lines_in_an_output_use_doubled_separators(tmp_path: Path) -> None:
    p = tmp_path / "blank.txt"
    p.write_text("cmd a\n----\n----\nx\n\ny\n----\n----\n\ncmd b\n----\nz\n")
    _, cases = parse(p)
    assert [(c.cmd, c.expected) for c in cases] == [("cmd", "x\n\ny"), ("cmd", "z")]
    seen: list[Case] = []

    def echo(c: Case) -> str:
        seen.append(c)
        return c.expected

    run_file(p, echo, rewrite=True)
    assert [c.line for c in seen] == [1, 10]
    assert p.read_text() == "cmd a\n----\n----\nx\n\ny\n----\n----\n\ncmd b\n----\nz\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("campaign 1\nok\n", "t.txt:1: campaign: no '----' separator"),
        ("campaign 1\n\n----\nok\n", "t.txt:1: campaign: no '----' before the blank line"),
        ("add-nodes 3 voters=(1,2\n----\nok\n", "t.txt:1: unbalanced '('"),
        ("x\n----\n----\nnever closed\n", "t.txt:1: x: unterminated '----' block"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, error: str) -> None:
    p = tmp_path / "t.txt"
    p.write_text(text)
    with pytest.raises(DataDrivenError, match=error.replace("(", r"\(")):
        parse(p)


def test_unknown_command_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("\n# c\nfly 1\n----\nok\n")
    with pytest.raises(DataDrivenError, match=r"t.txt:3: fly: unknown command"):
        run_transcript(p, rewrite=False)
