"""The bug-zoo matrix, expectation matching and the Markdown table, without processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers.results import Results
from harness.campaign.zoo_matrix import (
    MATRIX,
    Expect,
    MatrixError,
    describe_faults,
    load,
    parse,
    select,
)
from harness.campaign.zoo_table import (
    EntryReport,
    ZooRun,
    expected_found,
    load_reports,
    merge,
    render,
    splice,
)
from harness.run.config import validate
from nodes.bugs import ALL_BUGS


def res(**checkers: dict[str, Any]) -> Results:
    return Results.of({"checkers": {k.replace("_", "-"): v for k, v in checkers.items()}})


#: Anomaly entries on correct raftkv: a fault breaks an assumption of the algorithm (leases
#: assume bounded clock drift), not the code.
BROKEN_ASSUMPTIONS = {"lease-read-clock-drift"}


def test_shipped_matrix_covers_every_bug_and_each_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.disk import hostfs

    monkeypatch.setattr(hostfs, "refusal", lambda: None)  # the configs, not this machine's FUSE
    entries = load()
    bugs = {b for e in entries for b in e.bugs()}
    assert bugs == set(ALL_BUGS)
    for e in entries:
        cfg = validate(e.raw_config(), str(e.config))  # the run would accept it
        assert cfg["name"] == f"zoo-{e.name}"
        if e.is_bug and cfg["db"] == "raftkv" and e.name not in BROKEN_ASSUMPTIONS:
            assert len(cfg["bugs"]) == 1 and e.name == cfg["bugs"][0]
        if e.name in BROKEN_ASSUMPTIONS:  # correct raftkv under a fault that breaks what it assumes
            assert cfg["bugs"] == []
    correct = [e for e in entries if not e.is_bug]
    assert {validate(e.raw_config(), str(e.config))["db"] for e in correct} == {"raftkv", "etcd", "nats"}
    assert all(e.bugs() == [] for e in correct)
    # the correct raftkv build runs the very schedule of the stale-read entry
    by_name = {e.name: e for e in entries}
    stale, correct_raftkv = (
        by_name["stale-read"].raw_config(),
        by_name["correct-raftkv-partitions"].raw_config(),
    )
    assert stale["nemesis"] == correct_raftkv["nemesis"] and stale["raft"] == correct_raftkv["raft"]
    # lease reads and ReadIndex reads under the very same clock drift and isolation
    lease, readindex = (validate(by_name[n].raw_config()) for n in ("lease-read-clock-drift", "readindex-clock-drift"))
    assert lease["nemesis"] == readindex["nemesis"] and lease["nemesis"]["clock_rates"] == [0.15]
    assert (lease["raft"]["read_mode"], readindex["raft"]["read_mode"]) == ("lease", "linearizable")
    assert lease["raft"]["check_quorum"] and not by_name["readindex-clock-drift"].is_bug


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "a list 'entries'"),
        ({"entries": [{"name": "a", "config": "a.yaml", "expect": "maybe"}]}, "expect: 'valid' or"),
        (
            {"entries": [{"name": "a", "config": "a.yaml", "expect": {"checker": 3}}]},
            "expect.checker",
        ),
        (
            {"entries": [{"name": "a", "config": "a.yaml", "expect": "valid", "colour": 1}]},
            "unknown field 'colour'",
        ),
        (
            {"entries": [{"name": "a", "config": "a.yaml", "expect": "valid", "needs": "gpu"}]},
            "needs: expected root",
        ),
        (
            {"entries": [{"name": "a", "config": "a.yaml", "expect": "valid"}] * 2},
            "expected a new non-empty name",
        ),
    ],
)
def test_matrix_errors_are_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(MatrixError, match=message) as e:
        parse(raw, "m.yaml", Path("/z"))
    assert "\n" not in str(e.value) and str(e.value).startswith("m.yaml: ")


def test_select_keeps_matrix_order_and_rejects_unknown_names() -> None:
    entries = load(MATRIX)
    names = [e.name for e in select(entries, ["correct-raftkv-partitions", "stale-read"])]
    assert names == ["stale-read", "correct-raftkv-partitions"]
    with pytest.raises(MatrixError, match="unknown entry 'nope'"):
        select(entries, ["nope"])


LIN = {"valid": False, "counterexample": {"message": "stale read"}}
VOTE = {"valid": False, "violations": [{"kind": "durability", "message": "lost vote"}]}
MEMBER = {"valid": False, "violations": [{"kind": "leader-membership", "message": "n4 led"}]}


@pytest.mark.parametrize(
    ("expect", "results", "found"),
    [
        (Expect(("linearizability",)), res(linearizability=LIN), True),
        (
            Expect(("linearizability",)),
            res(linearizability={"valid": True}, raft_safety=VOTE),
            False,
        ),
        (
            Expect(("raft-safety",), ("durability", "one-vote-per-term")),
            res(raft_safety=VOTE),
            True,
        ),
        (Expect(("raft-safety",), ("leader-membership",)), res(raft_safety=VOTE), False),
        (Expect(("raft-safety",), ("leader-membership",)), res(raft_safety=MEMBER), True),
        (Expect(("raft-safety", "linearizability")), res(linearizability=LIN), True),
        (Expect(("linearizability",)), res(linearizability={"valid": "unknown"}), False),
        (Expect(("linearizability",)), None, False),
    ],
)
def test_expected_found(expect: Expect, results: Results | None, found: bool) -> None:
    assert expected_found(expect, results) is found


def zrun(
    entry: str, seed: int, verdict: str, expected: bool, detection: float | None = None, **kw: Any
) -> ZooRun:
    anomalies = kw.pop("anomalies", ["linearizability"] if verdict == "anomaly" else [])
    return ZooRun(
        entry,
        seed,
        verdict,
        anomalies,
        anomalies,
        expected,
        detection,
        40.0,
        f"/s/{entry}/{seed}",
        kw.pop("message", "m"),
    )


def test_entry_report_rates_and_table() -> None:
    bug = EntryReport(
        "stale-read",
        True,
        ["stale-read"],
        "raftkv",
        "partition(leader) every 6s for 4s",
        "linearizability",
    )
    bug.runs = [
        zrun("stale-read", 1, "anomaly", True, 5.0),
        zrun("stale-read", 2, "anomaly", True, 9.0),
        zrun("stale-read", 3, "valid", False),
        zrun("stale-read", 4, "infra", False, message="port | in use"),
    ]
    assert len(bug.completed()) == 3 and len(bug.detected()) == 2
    assert bug.median_detection_s() == 7.0 and not bug.ok()
    good = EntryReport("correct-raftkv", False, [], "raftkv", "same", "valid")
    good.runs = [
        zrun("correct-raftkv", 1, "valid", True),
        zrun("correct-raftkv", 2, "unknown", False),
    ]
    assert good.false_positives() == [] and good.ok()
    etcd = EntryReport(
        "etcd-serializable",
        True,
        [],
        "etcd",
        "partition(one)",
        "linearizability",
        skipped="needs root",
    )
    table = render([bug, good, etcd], "HEADER")
    lines = table.splitlines()
    assert lines[0] == "HEADER"
    row = next(line for line in lines if line.startswith("| `stale-read` | partition"))
    assert (
        "| 2/3 | 7.0 s |" in row
        and "linearizability ×2" in row
        and "infra ×1" in row
        and "valid ×1" in row
    )
    assert any(
        line.startswith("| `etcd-serializable` |") and "not run: needs root" in line
        for line in lines
    )
    good_row = next(line for line in lines if line.startswith("| `correct-raftkv` | same | 2 |"))
    assert good_row.endswith("| unknown ×1, valid ×1 | 0 |")
    assert "port \\| in use" in table  # cells are escaped
    assert (
        sum(1 for line in lines if line.startswith("| `stale-read` | ") and "| NO |" in line) == 2
    )


def test_splice_replaces_only_the_generated_section() -> None:
    doc = "# Bug zoo\n\nprose\n"
    once = splice(doc, "T1")
    assert once.startswith("# Bug zoo\n\nprose\n\n<!-- zoo:begin") and "T1" in once
    twice = splice(once + "\nafter\n", "T2")
    assert (
        "T1" not in twice
        and "T2" in twice
        and twice.endswith("after\n")
        and twice.count("zoo:begin") == 1
    )
    both = splice(twice, "EXTRA", section="zoo-extra")
    assert "T2" in both and "EXTRA" in both
    assert "EXTRA" not in splice(both, "E2", section="zoo-extra") and "T2" in both


def test_describe_faults() -> None:
    raw = {"nodes": 5, "nemesis": {"faults": ["kill", "transfer"], "kills": ["leader"], "schedule": "random",
                                   "interval": 2, "duration": 1}, "raft": {"pre_vote": False}}  # fmt: skip
    assert (
        describe_faults(raw) == "kill(leader), transfer ~every 2s for 1s; 5 nodes; pre-vote=False"
    )


def test_merge_an_earlier_invocation() -> None:
    earlier = EntryReport("stale-read", True, ["stale-read"], "raftkv", "f", "linearizability")
    earlier.runs = [zrun("stale-read", 1, "anomaly", True, 5.0)]
    gone = EntryReport("commit-old-term", True, ["commit-old-term"], "raftkv", "f", "raft-safety")
    gone.runs = [zrun("commit-old-term", 1, "valid", False)]
    data = json.loads(json.dumps({"entries": [earlier.to_json(), gone.to_json()]}))
    back = load_reports(data)
    assert back["stale-read"].runs == earlier.runs
    now = EntryReport("stale-read", True, ["stale-read"], "raftkv", "f", "linearizability")
    now.runs = [zrun("stale-read", 6, "anomaly", True, 7.0)]
    merged = merge(back, [now])
    assert [r.name for r in merged] == ["stale-read", "commit-old-term"]
    assert [x.seed for x in merged[0].runs] == [1, 6] and merged[0].median_detection_s() == 6.0
