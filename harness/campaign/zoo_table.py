"""Bug-zoo outcomes: was each run's finding the expected one, per-entry detection rates and
times, and the Markdown table of docs/bug-zoo.md. Pure functions of recorded results."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from checkers.results import Results
from harness.campaign.zoo_matrix import Expect


def expected_found(expect: Expect, results: Results | None) -> bool:
    """True if one of the expected checkers reported the run invalid (with one of the expected
    raft-safety violation kinds, where kinds are given)."""
    if results is None:
        return False
    caught = set(results.caught_by())
    for checker in expect.checkers:
        if checker not in caught:
            continue
        if checker == "raft-safety" and expect.kinds:
            kinds = {
                k.split(":", 1)[1]
                for k in results.anomaly_kinds()
                if k.startswith("raft-safety:")
            }
            if kinds & set(expect.kinds):
                return True
            continue
        return True
    return False


@dataclass
class ZooRun:
    entry: str
    seed: int
    verdict: str  # valid | anomaly | unknown | infra
    caught_by: list[str]
    anomalies: list[str]
    expected: bool  # bug entry: the expected finding; correct entry: valid
    detection_s: float | None
    elapsed_s: float
    run_dir: str | None
    message: str


@dataclass
class EntryReport:
    name: str
    is_bug: bool
    bugs: list[str]
    db: str
    faults: str
    expect: str
    runs: list[ZooRun] = field(default_factory=list)
    skipped: str | None = None  # why the entry did not run

    def completed(self) -> list[ZooRun]:
        """Runs that produced a verdict (a crashed run says nothing about the system)."""
        return [r for r in self.runs if r.verdict != "infra"]

    def detected(self) -> list[ZooRun]:
        return [r for r in self.completed() if r.expected and self.is_bug]

    def false_positives(self) -> list[ZooRun]:
        return [r for r in self.completed() if not self.is_bug and r.verdict == "anomaly"]

    def median_detection_s(self) -> float | None:
        times = [r.detection_s for r in self.detected() if r.detection_s is not None]
        return round(statistics.median(times), 1) if times else None

    def caught_by_counts(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for r in self.completed():
            c.update(r.anomalies)
        return dict(sorted(c.items()))

    def verdict_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.verdict for r in self.runs).items()))

    def ok(self) -> bool:
        """The entry met its expectation: every completed run of a bug entry caught it, no
        correct run reported an anomaly."""
        done = self.completed()
        if self.is_bug:
            return bool(done) and len(self.detected()) == len(done)
        return not self.false_positives()

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "runs"}
        out["runs"] = [asdict(r) for r in self.runs]
        out["detected"] = len(self.detected())
        out["completed"] = len(self.completed())
        out["median_detection_s"] = self.median_detection_s()
        out["false_positives"] = len(self.false_positives())
        return out


def load_reports(data: dict[str, Any]) -> dict[str, EntryReport]:
    """EntryReports back from a zoo-results.json (to merge an earlier invocation's runs)."""
    out: dict[str, EntryReport] = {}
    for e in data.get("entries") or []:
        runs = [
            ZooRun(**{k: r[k] for k in ZooRun.__dataclass_fields__}) for r in e.get("runs") or []
        ]
        fields = {k: e[k] for k in EntryReport.__dataclass_fields__ if k != "runs" and k in e}
        out[e["name"]] = EntryReport(**fields, runs=runs)
    return out


def merge(earlier: dict[str, EntryReport], now: Sequence[EntryReport]) -> list[EntryReport]:
    """`now` with the runs of the same-named earlier entries first; earlier entries that were
    not run again are kept, in their place."""
    merged: list[EntryReport] = []
    names = {r.name for r in now}
    for r in now:
        old = earlier.get(r.name)
        if old is not None and old.skipped is None:
            r.runs = [*old.runs, *r.runs]
        merged.append(r)
    merged += [r for name, r in earlier.items() if name not in names]
    return merged


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in d.items()) or "—"


def render(reports: Sequence[EntryReport], header: str) -> str:
    """The Markdown of the zoo: seeded bugs, correct systems, then every run."""
    lines = [header, "", "### Seeded bugs and known anomalies", ""]
    lines += [
        "| entry | faults | expected finding | findings (runs) | detected | median time to detection | other outcomes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in reports if r.is_bug):
        if r.skipped:
            lines.append(
                f"| `{r.name}` | {_cell(r.faults)} | {_cell(r.expect)} | not run: {_cell(r.skipped)} | — | — | — |"
            )
            continue
        done = r.completed()
        med = r.median_detection_s()
        others = Counter(x.verdict for x in r.runs if not x.expected)
        lines.append(
            f"| `{r.name}` | {_cell(r.faults)} | {_cell(r.expect)} | {_cell(_counts(r.caught_by_counts()))} | "
            f"{len(r.detected())}/{len(done)} | {'—' if med is None else f'{med} s'} | "
            f"{_cell(_counts(dict(sorted(others.items()))))} |"
        )
    lines += ["", "### Correct systems (false positives)", ""]
    lines += ["| entry | faults | runs | verdicts | false positives |", "|---|---|---|---|---|"]
    for r in (r for r in reports if not r.is_bug):
        if r.skipped:
            lines.append(
                f"| `{r.name}` | {_cell(r.faults)} | 0 | not run: {_cell(r.skipped)} | — |"
            )
            continue
        lines.append(
            f"| `{r.name}` | {_cell(r.faults)} | {len(r.runs)} | {_counts(r.verdict_counts())} | "
            f"{len(r.false_positives())} |"
        )
    lines += ["", "### Every run", ""]
    lines += [
        "| entry | seed | verdict | findings | as expected | detection | run time | what the checkers said |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for r in reports:
        for x in r.runs:
            det = "—" if x.detection_s is None else f"{x.detection_s:.1f} s"
            lines.append(
                f"| `{r.name}` | {x.seed} | {x.verdict} | {_cell(', '.join(x.anomalies) or '—')} | "
                f"{'yes' if x.expected else 'NO'} | {det} | {x.elapsed_s:.0f} s | {_cell(x.message[:160])} |"
            )
    return "\n".join(lines) + "\n"


def markers(section: str = "zoo") -> tuple[str, str]:
    """The comment lines around a generated section of a Markdown document."""
    return f"<!-- {section}:begin (generated by faultline zoo) -->", f"<!-- {section}:end -->"


def splice(document: str, table: str, section: str = "zoo") -> str:
    """Replace the generated `section` of `document` (between its markers) with `table`;
    append the section if the markers are absent."""
    begin, end_mark = markers(section)
    block = f"{begin}\n{table.rstrip()}\n{end_mark}"
    start, end = document.find(begin), document.find(end_mark)
    if start == -1 or end == -1 or end < start:
        return document.rstrip() + ("\n\n" if document.strip() else "") + block + "\n"
    return document[:start] + block + document[end + len(end_mark) :]
