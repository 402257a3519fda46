"""Config files: `extends:` chains, the shipped configs (same values as before they were
trimmed), and hostile input: one line, exit 3, nothing made, nothing recorded lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.run import cli, config
from harness.run.config import ConfigError
from tests.support.env import REPO

CONFIGS = REPO / "configs"
#: main before the shipped configs were trimmed to what differs and made to extend each other.
#: If a shipped config is changed on purpose, move this to the commit that changed it.
BEFORE = "f8169d9"


def shipped() -> list[str]:
    return sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml") if p.name != "matrix.yaml")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refused(path: Path, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        config.load(path, overrides)
    text = str(e.value)
    assert "\n" not in text, text
    return text


# -- extends ------------------------------------------------------------------------------

def test_extends_merges_mappings_replaces_lists_and_chains(tmp_path: Path) -> None:
    write(tmp_path / "base" / "a.yaml", "name: a\nrate: 10\nnemesis: {interval: 7, duration: 3, kills: [one, leader]}\n"
                                        "raft: {election_tick: 20}\n")
    write(tmp_path / "base" / "b.yaml", "extends: a.yaml\nname: b\nnemesis: {duration: 2, kills: [all]}\n")
    c = write(tmp_path / "c.yaml", "extends: base/b.yaml\nname: c\nraft: {pre_vote: false}\n")
    cfg = config.load(c, {"seed": 1})
    assert cfg["name"] == "c" and cfg["rate"] == 10.0
    assert cfg["nemesis"]["interval"] == 7.0 and cfg["nemesis"]["duration"] == 2.0
    assert cfg["nemesis"]["kills"] == ["all"]  # a list is replaced, not appended to
    assert cfg["raft"]["election_tick"] == 20 and cfg["raft"]["pre_vote"] is False  # merged
    assert "extends" not in cfg  # the resolved config (saved as test.yaml) stands alone


def test_extends_cycle_is_one_line_naming_the_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: ./a.yaml\nname: b\n")
    text = refused(a)
    assert text == f"{tmp_path / 'b.yaml'}: extends: a cycle: {a} -> {tmp_path / 'b.yaml'} -> {a}"
    me = write(tmp_path / "me.yaml", "extends: me.yaml\n")
    assert "extends: a cycle" in refused(me)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"c.yaml": "extends: nope.yaml\n"}, "c.yaml: extends: {tmp}/nope.yaml: no such file"),
        ({"c.yaml": "extends: [a.yaml]\n"}, "c.yaml: extends: expected a file name, got ['a.yaml']"),
        ({"c.yaml": "extends: ''\n"}, "c.yaml: extends: expected a file name"),
        # the file that has the bad field is named, wherever it is in the chain
        ({"c.yaml": "extends: p.yaml\nname: c\n", "p.yaml": "rate: fast\n"}, "p.yaml: rate: expected a number"),
        ({"c.yaml": "extends: p.yaml\nrate: fast\n", "p.yaml": "rate: 5\n"}, "c.yaml: rate: expected a number"),
        ({"c.yaml": "extends: p.yaml\n", "p.yaml": "raft: {electon_tick: 3}\n"}, "p.yaml: raft.electon_tick: unknown field"),
        ({"c.yaml": "extends: p.yaml\nnemesis: {interval: 3}\n", "p.yaml": "nemesis: {duration: -1}\n"},
         "p.yaml: nemesis.duration: must be >= 0.1"),
        ({"c.yaml": "extends: p.yaml\nwarmup: 90\n", "p.yaml": "time_limit: 60\n"}, "c.yaml: warmup: must be shorter"),
        ({"c.yaml": "extends: p.yaml\n", "p.yaml": "db_opts: {dri: /x}\n"}, "p.yaml: db_opts.dri: unknown raftkv option"),
        ({"c.yaml": "extends: p.yaml\n", "p.yaml": "- 1\n"}, "p.yaml: (top level): expected a mapping"),
        ({"c.yaml": "extends: p.yaml\n", "p.yaml": "a: 1\na: 2\n"}, "p.yaml: line 2: duplicate key 'a'"),
    ],
)
def test_extends_errors_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    text = refused(tmp_path / "c.yaml")
    assert message.format(tmp=tmp_path) in text, text
    file = message.split(":", 1)[0]
    if "{tmp}" not in file:
        assert text.startswith(f"{tmp_path / file}: "), text


def test_a_child_may_correct_what_it_extends(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", "rate: fast\n")
    c = write(tmp_path / "c.yaml", "extends: p.yaml\nrate: 5\n")
    assert config.load(c)["rate"] == 5.0


# -- the shipped configs ------------------------------------------------------------------

def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)


def test_shipped_configs_resolve_to_the_same_values_as_before(tmp_path: Path) -> None:
    """Trimmed to what differs and using `extends:`, each shipped config still resolves to
    what it did as a standalone file (same values, so the same verdicts for the same seeds)."""
    if shutil.which("git") is None or _git("cat-file", "-e", f"{BEFORE}^{{commit}}").returncode != 0:
        pytest.skip(f"needs the repository's history (commit {BEFORE})")
    listed = _git("ls-tree", "-r", "--name-only", BEFORE, "configs/").stdout.split()
    before = sorted(p.removeprefix("configs/") for p in listed if p.endswith(".yaml") and not p.endswith("matrix.yaml"))
    assert set(before) <= set(shipped())  # configs added since are checked by the next test
    for rel in before:
        old = write(tmp_path / rel, _git("show", f"{BEFORE}:configs/{rel}").stdout)
        assert config.load(CONFIGS / rel, {"seed": 1}) == config.load(old, {"seed": 1}), rel


#: Fields a shipped config states although they equal what it would get anyway, and why.
STATED_ON_PURPOSE = {("zoo/etcd-linearizable.yaml", "raft.read_mode"): "the read mode is what the entry is about"}


def _leaves(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("provider_opts", "db_opts"):
            out += _leaves(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


@pytest.mark.parametrize("rel", shipped())
def test_shipped_configs_say_only_what_differs(rel: str, tmp_path: Path) -> None:
    """Every field a shipped config sets changes its resolved config: defaults live once."""
    path = CONFIGS / rel
    raw = yaml.safe_load(path.read_text())
    resolved = config.load(path, {"seed": 1})
    weights = {f"workload_opts.{w}" for w in ("read", "write", "cas", "delete")}
    mix = {k: v for k, v in (raw.get("workload_opts") or {}).items() if f"workload_opts.{k}" in weights}
    whole_mix = any(v != config.WORKLOAD_OPTS[k].default for k, v in mix.items())  # type: ignore[union-attr]
    for dotted in _leaves({k: v for k, v in raw.items() if k != "extends"}):
        if (rel, dotted) in STATED_ON_PURPOSE or (whole_mix and dotted in weights):
            continue  # an op mix that differs is stated whole, as four weights
        trimmed = json.loads(json.dumps(raw))
        *parents, last = dotted.split(".")
        node = trimmed
        for part in parents:
            node = node[part]
        del node[last]
        copy = write(tmp_path / rel, yaml.safe_dump(trimmed))
        for other in CONFIGS.rglob("*.yaml"):  # what it extends, at the same relative place
            target = tmp_path / other.relative_to(CONFIGS)
            if not target.exists():
                write(target, other.read_text())
        try:
            without = config.load(copy, {"seed": 1})
        except ConfigError:
            continue  # needed: without it the config is not even valid
        assert without != resolved, f"{rel}: {dotted} repeats what it would get anyway"


# -- hostile input ------------------------------------------------------------------------

DEEP = "a: " + "[" * 3000 + "]" * 3000 + "\n"
HOSTILE: list[tuple[str, str | bytes, str]] = [
    ("binary", bytes(range(256)) * 4, "not UTF-8 text"),
    ("latin-1", "name: caf\u00e9\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xe9 at offset 9)"),
    ("nul", b"name: a\x00b\n", "line 1: invalid YAML"),
    ("impossible date", "time_limit: 2024-02-30\n", "time_limit: expected a number, got '2024-02-30'"),
    ("explicit bad date", "name: !!timestamp 2024-02-30\n", "invalid value"),
    ("date as a name", "name: 2024-02-30\nrate: x\n", "rate: expected a number"),  # a date stays a string
    ("deep nesting", DEEP, "nested too deeply"),
    ("nesting past the limit", "provider_opts: " + "{a: " * 20 + "1" + "}" * 20 + "\n", "nested deeper than 16 levels"),
    ("huge integer", f"time_limit: {10**400}\n", "time_limit: must be <= 1e+06"),
    ("integer of 5000 digits", f"rate: !!int {'7' * 5000}\n", "invalid value"),
    ("huge float", "time_limit: 1.0e+999\n", "time_limit: expected a finite number, got inf"),
    ("nan", "time_limit: .nan\n", "time_limit: expected a finite number, got nan"),
    ("negative inf", "warmup: -.inf\n", "warmup: expected a finite number"),
    ("huge seed", f"seed: {10**30}\n", "seed: must be <="),
    ("huge concurrency", "concurrency: 100000000\n", "concurrency: must be <= 1024"),
    ("huge multiple", "nodes: 9\nconcurrency: 9999n\n", "concurrency: must be <= 1024 workers, got 89991"),
    ("huge test count", f"test_count: {2**40}\n", "test_count: must be <= 100000"),
    ("name ..", "name: ..\n", "name: expected up to 100 letters"),
    ("name with a slash", "name: ../../etc\n", "name: expected up to 100 letters"),
    ("hidden name", "name: .x\n", "name: expected up to 100 letters"),
    ("long name", f"name: {'a' * 300}\n", "name: expected up to 100 letters"),
    ("duplicate key", "rate: 1\nname: a\nrate: 2\n", "line 3: duplicate key 'rate'"),
    ("nested duplicate key", "nemesis:\n  interval: 1\n  interval: 2\n", "line 3: duplicate key 'interval'"),
    ("non-string key", "1: 2\n", "1: unknown field"),
    ("key with a newline", '"a\\nb": 1\n', "'a\\nb': unknown field"),
    ("two documents", "a: 1\n---\nb: 2\n", "invalid YAML"),
    ("python object", "name: !!python/object:os.system x\n", "invalid YAML"),
    ("scalar", "just text\n", "(top level): expected a mapping, got 'just text'"),
    ("unknown local option", "provider_opts: {hots: 1}\n", "provider_opts.hots: unknown local option"),
    ("unknown netns option", "provider: netns\nprovider_opts: {x: 1}\n", "provider_opts.x: unknown netns option"),
    ("unknown ssh option", "provider: ssh\nprovider_opts: {pasword: x}\n", "provider_opts.pasword: unknown ssh option"),
    ("bad ssh port", "provider: ssh\nprovider_opts: {port: '22'}\n", "provider_opts.port: expected a port"),
    ("ssh host missing", "provider: ssh\nprovider_opts: {hosts: {n1: {hostname: h}}}\n", "provider_opts.hosts.n2: missing"),
    ("unknown docker option", "provider: docker\nprovider_opts: {imgae: x}\n", "provider_opts.imgae: unknown docker option"),
    ("bad docker option", "provider: docker\nprovider_opts: {host: [1]}\n", "provider_opts.host: expected a string"),
    ("unknown raftkv option", "db_opts: {dri: /x}\n", "db_opts.dri: unknown raftkv option"),
    ("bad raftkv option", "db_opts: {dir: 3}\n", "db_opts.dir: expected a string"),
    ("bad etcd option", "db: etcd\nnemesis: {faults: []}\ndb_opts: {heartbeat_ms: fast}\n", "db_opts.heartbeat_ms: expected int"),
    ("anchors multiplied", "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", "more than 100000 values"),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_files_are_one_line(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = write(tmp_path / "x.yaml", text)
    out = refused(path)
    assert out.startswith(f"{path}: ") and message in out, out


def test_files_that_are_not_files(tmp_path: Path) -> None:
    assert "cannot read: a directory" in refused(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "cannot read: not a regular file" in refused(fifo)  # refused at once, no wait for a writer
    big = write(tmp_path / "big.yaml", "# " + "x" * (1 << 20) + "\n")
    assert "larger than" in refused(big)
    assert "No such file" in refused(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--time-limit", "nan"], "time_limit: expected a finite number, got nan"),
        (["--time-limit", "inf"], "time_limit: expected a finite number, got inf"),
        (["--time-limit", "1e300"], "time_limit: must be <="),
        (["--name", ".."], "name: expected up to 100 letters"),
        (["--name", "a/../../b"], "name: expected up to 100 letters"),
        (["--seed", str(10**40)], "seed: must be <="),
        (["--concurrency", "100000000"], "concurrency: must be <= 1024"),
        (["--nemesis-interval", "nan"], "nemesis.interval: expected a finite number"),
    ],
)
def test_bad_flags_exit_3_before_any_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    store = tmp_path / "store"
    code = cli.cmd_run([str(CONFIGS / "local.yaml"), "--store", str(store), *argv])
    err = capsys.readouterr().err
    assert code == 3 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []  # no store, no run folder (inside it or beside it)


def test_bad_db_opts_fail_before_any_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "x.yaml", "db_opts: {dri: /srv}\n")
    store = tmp_path / "store"
    assert cli.cmd_run([str(cfg), "--store", str(store)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == f"faultline: {cfg}: db_opts.dri: unknown raftkv option (known: dir, python)"
    assert not store.exists()


# -- fuzz: generated garbage never gets past the loader as anything but one clear line ----

_SCHEMA_KEYS = sorted(config.SCHEMA) + ["extends"]
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["2n", "..", "n1", "nan", "2024-02-30", "partition", "kill", "local", "etcd"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_SCHEMA_KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
_configs = st.dictionaries(st.sampled_from(_SCHEMA_KEYS), _values, max_size=6)


def _mutations(text: str) -> st.SearchStrategy[bytes]:
    data = text.encode()
    return st.lists(
        st.tuples(st.integers(0, max(0, len(data) - 1)), st.binary(min_size=0, max_size=4)), min_size=1, max_size=6
    ).map(lambda edits: _apply(data, edits))


def _apply(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for at, chunk in edits:
        out[at:at + max(1, len(chunk) // 2)] = chunk
    return bytes(out)


_garbage = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    _configs.map(lambda c: yaml.safe_dump(c, allow_unicode=True).encode()),
    *(_mutations((CONFIGS / rel).read_text()) for rel in ("local.yaml", "ssh-lab.yaml", "nightly.yaml", "zoo/stale-read.yaml")),
)


class _NoRun:
    """Stands in for the run engine: a config that passes must not start a cluster here."""

    calls = 0

    def __init__(self, test: dict[str, Any], *_args: Any) -> None:
        type(self).calls += 1
        raise _Accepted


class _Accepted(Exception):
    pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=_garbage)
def test_fuzz_the_config_loader(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """Generated garbage: a resolved config or one ConfigError line naming the file, never a
    traceback; the loader writes nothing."""
    tmp = tmp_path_factory.mktemp("fuzz")
    path = write(tmp / "x.yaml", data)
    try:
        cfg = config.load(path)
    except ConfigError as e:
        text = str(e)
        assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 1000, text
    else:
        assert isinstance(cfg["seed"], int) and cfg["time_limit"] > cfg["warmup"]
    assert [p.name for p in tmp.iterdir()] == ["x.yaml"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=_garbage)
def test_fuzz_faultline_run(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    """`faultline run` on garbage: exit 3 with one line, or (a valid config) the run engine
    is reached; either way the store's recorded run is untouched and no folder is added."""
    tmp = tmp_path_factory.mktemp("fuzzrun")
    store = tmp / "store"
    recorded = write(store / "old" / "20260101T000000-1" / "history.jsonl", '{"index": 0}\n')
    path = write(tmp / "x.yaml", data)
    monkeypatch.setattr(cli, "Run", _NoRun)
    err = ""
    with monkeypatch.context() as m:
        import io
        import sys

        buf = io.StringIO()
        m.setattr(sys, "stderr", buf)
        try:
            code = cli.cmd_run([str(path), "--store", str(store)])
        except _Accepted:
            code = None
        err = buf.getvalue()
    if code is not None:
        assert code == 3 and len(err.strip().splitlines()) == 1 and err.startswith("faultline: "), err
    assert recorded.read_text() == '{"index": 0}\n'
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*")) == [
        "old", "old/20260101T000000-1", "old/20260101T000000-1/history.jsonl"]
