"""The soak's record: one entry per run, the totals, `soak-summary.json`, the printed text and
the JUnit XML file (one test case per run)."""

from __future__ import annotations

import json
import os
import statistics
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.campaign.soak_policy import exit_code

SUMMARY_FILE = "soak-summary.json"
SUMMARY_VERSION = 1


@dataclass
class SoakRun:
    """One run of the soak (after its retry, if the first attempt crashed)."""

    index: int
    config: str
    test: str
    seed: int
    mix: list[str] | None
    verdict: str  # valid | anomaly | unknown | infra
    exit_code: int
    run_dir: str | None
    started: float  # wall clock
    elapsed_s: float
    anomalies: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    message: str = ""
    throughput: float | None = None
    retried: bool = False
    first_attempt: dict[str, Any] | None = None  # {"run_dir", "failure"} of a crashed first try
    kept: str = "full"  # full | compact | removed | pruned
    interrupted: bool = False


@dataclass
class SoakSummary:
    master_seed: int
    configs: list[str]
    mixes: list[list[str]]
    keep: str
    duration_s: float | None
    max_runs: int | None
    store: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stopped_by: str = "running"  # duration | max-runs | signal | running
    runs: list[SoakRun] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(r.verdict for r in self.runs)
        return {
            "runs": len(self.runs),
            "valid": c["valid"],
            "anomalies": c["anomaly"],
            "unknown": c["unknown"],
            "infra": c["infra"],
            "retried": sum(1 for r in self.runs if r.retried),
        }

    def anomalies_by_kind(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for r in self.runs:
            if r.verdict == "anomaly":
                c.update(r.anomalies or ["unclassified"])
        return dict(sorted(c.items()))

    def exit_code(self) -> int:
        n = self.counts()
        return exit_code(n["anomalies"], n["unknown"], n["infra"])

    def throughput_stats(self) -> dict[str, float] | None:
        tps = [r.throughput for r in self.runs if r.throughput is not None]
        if not tps:
            return None
        return {
            "min": round(min(tps), 2),
            "median": round(statistics.median(tps), 2),
            "max": round(max(tps), 2),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SUMMARY_VERSION,
            "master_seed": self.master_seed,
            "replay": self.replay_command(),
            "configs": self.configs,
            "mixes": self.mixes,
            "keep": self.keep,
            "duration_s": self.duration_s,
            "max_runs": self.max_runs,
            "store": self.store,
            "started": self.started,
            "finished": self.finished,
            "stopped_by": self.stopped_by,
            "totals": self.counts(),
            "anomalies_by_kind": self.anomalies_by_kind(),
            "throughput": self.throughput_stats(),
            "exit_code": self.exit_code(),
            "runs": [asdict(r) for r in self.runs],
        }

    def replay_command(self) -> str:
        parts = ["faultline soak", *self.configs, f"--master-seed {self.master_seed}"]
        parts += [f"--mix {','.join(m) or 'none'}" for m in self.mixes]
        if self.max_runs is not None:
            parts.append(f"--max-runs {self.max_runs}")
        return " ".join(parts)

    def write(self, path: Path) -> None:
        """Atomically replace `path` (it is rewritten after every run, for a live trend)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)

    def text(self) -> str:
        n = self.counts()
        wall = (self.finished or time.time()) - self.started
        lines = [
            f"soak: {n['runs']} runs in {wall / 60:.1f} min (stopped by {self.stopped_by}), master seed {self.master_seed}",
            f"  valid {n['valid']}  anomalies {n['anomalies']}  unknown {n['unknown']}  "
            f"infrastructure errors {n['infra']}  (retried {n['retried']})",
        ]
        for kind, count in self.anomalies_by_kind().items():
            lines.append(f"  anomaly {kind}: {count} run(s)")
        tp = self.throughput_stats()
        if tp is not None:
            lines.append(
                f"  throughput per run (ops/s): min {tp['min']}  median {tp['median']}  max {tp['max']}"
            )
        for r in self.runs:
            if r.verdict != "valid":
                lines.append(
                    f"  run {r.index} [{r.verdict}] seed {r.seed} {r.test}: {r.message} ({r.run_dir})"
                )
        lines.append(f"replay: {self.replay_command()}")
        lines.append(f"exit code: {self.exit_code()}")
        return "\n".join(lines)


def junit_xml(summary: SoakSummary, suite_name: str = "faultline-soak") -> ET.ElementTree:
    """One test case per run: failure = anomaly, error = infrastructure, skipped = unknown."""
    n = summary.counts()
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(n["runs"]),
        failures=str(n["anomalies"]),
        errors=str(n["infra"]),
        skipped=str(n["unknown"]),
        time=f"{sum(r.elapsed_s for r in summary.runs):.1f}",
    )
    ET.SubElement(
        ET.SubElement(suite, "properties"),
        "property",
        name="master_seed",
        value=str(summary.master_seed),
    )
    for r in summary.runs:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"soak.{r.test}",
            name=f"run-{r.index:04d}-seed-{r.seed}",
            time=f"{r.elapsed_s:.1f}",
        )
        detail = f"run folder: {r.run_dir}\nseed: {r.seed}\nconfig: {r.config}"
        if r.verdict == "anomaly":
            ET.SubElement(
                case, "failure", message=r.message, type=",".join(r.anomalies) or "anomaly"
            ).text = detail
        elif r.verdict == "infra":
            ET.SubElement(case, "error", message=r.message, type="infrastructure").text = detail
        elif r.verdict == "unknown":
            ET.SubElement(case, "skipped", message=f"unknown: {r.message}")
        ET.SubElement(case, "system-out").text = detail
    return ET.ElementTree(suite)


def write_junit(summary: SoakSummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(summary).write(path, encoding="utf-8", xml_declaration=True)
