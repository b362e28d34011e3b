"""Run jupyter_server's own test suite (the installed version's) on a plain server or with eda_gateway.

The tests come from jupyter_server's source distribution on PyPI, downloaded with pip on
first use into a cache outside the git tree (``.venv/eda-compat/``, or ``EDA_COMPAT_CACHE``)
and never copied into this repository. ``eda_compat_plugin.py`` (next to this file) is loaded
into the peer run: with ``mode="eda_gateway"`` every server the suite starts has eda_gateway
enabled, under jupyter_server's default identity (one token: single-user mode).

Command line (``scripts/compat.sh`` calls it)::

    python tests/compat/jupyter_server_suite.py [plain] [eda_gateway] [-- extra pytest args]
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KNOWN_DIFFERENCES = HERE / "jupyter_server_known_differences.json"

# The folders of the peer suite this tier runs.
FOLDERS = ("tests/services/kernels", "tests/services/sessions", "tests/services/contents")

# Changes to the peer suite's own pytest configuration (its pyproject.toml), same in both modes:
PEER_ARGS = [
    "-p", "eda_compat_plugin",
    "-p", "no:cacheprovider",  # writes nothing into the cache
    "-q", "--color=no", "--no-showlocals", "--tb=short",
    # pytest-timeout's "thread" method (upstream's) ends the whole run at the first hang
    "-o", "timeout_method=signal",
    # upstream turns warnings into errors; these two come from its own test code
    # (tests/services/kernels/test_connection.py builds HTTPServerRequest the old way)
    # under the installed tornado, on a plain server too
    "-W", "ignore:The method, uri, and version arguments to HTTPServerRequest are deprecated:DeprecationWarning",
    "-W", "ignore:The start_line argument to HTTPServerRequest will be required:DeprecationWarning",
]

RUN_TIMEOUT = 1800  # seconds for one whole run of the three folders
# The peer suite mostly waits (kernels starting, culling, timeouts): one process used ~20% of
# one core for ~290 s; its own pytest-xdist workers run it in about a third of that.
PEER_WORKERS = 3
# Unlisted failures are run again, alone (one worker, nothing else of the peer suite beside
# them): upstream's tests allow a second here and there, which the whole run's load on two
# cores sometimes takes. One that passes then is reported as flaky, not as a difference;
# past this many the run itself went wrong, and nothing is run again.
MAX_RETRIED = 10


class Unavailable(Exception):
    """The peer suite could not be fetched (no network, no PyPI, a broken download)."""


def installed_version() -> str:
    return version("jupyter_server")


def cache_dir() -> Path:
    configured = os.environ.get("EDA_COMPAT_CACHE")
    if configured:
        return Path(configured)
    venv = ROOT / ".venv"  # git-ignored
    if venv.is_dir():
        return venv / "eda-compat"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eda_gateway-compat"


def peer_suite(ver: str | None = None) -> Path:
    """The folder holding jupyter_server's ``tests/`` and ``pyproject.toml`` for ``ver``; fetched once."""
    ver = ver or installed_version()
    cache = cache_dir()
    target = cache / f"jupyter_server-{ver}"
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # one fetch at a time: a second one replaced the folder a first run had just started in
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        return _fetch(ver, cache, target)


def _fetch(ver: str, cache: Path, target: Path) -> Path:
    sdists = cache / "sdist"
    archive = _find_sdist(sdists, ver)
    if archive is None:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"jupyter_server=={ver}", "-d", str(sdists)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as e:
            raise Unavailable(f"{' '.join(command)} did not finish in 600 s") from e
        archive = _find_sdist(sdists, ver)
        if done.returncode != 0 or archive is None:
            raise Unavailable(f"could not download jupyter_server {ver}'s sdist from PyPI:\n"
                              f"{done.stdout[-1500:]}{done.stderr[-2500:]}")
    scratch = Path(tempfile.mkdtemp(prefix=f"jupyter_server-{ver}.", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            top = f"jupyter_server-{ver}/"
            members = [m for m in tar.getmembers()
                       if m.name.startswith(top + "tests/") or m.name == top + "pyproject.toml"]
            if not any(m.name.startswith(top + "tests/services/kernels/") for m in members):
                raise Unavailable(f"{archive} holds no tests/services/kernels/")
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(scratch, members=members, **kwargs)  # noqa: S202 (members checked, data filter)
        (scratch / top / ".complete").write_text(f"{archive.name}\n")
        shutil.rmtree(target, ignore_errors=True)
        (scratch / top).rename(target)
    except (tarfile.TarError, OSError) as e:
        raise Unavailable(f"could not extract {archive}: {e}") from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _find_sdist(folder: Path, ver: str) -> Path | None:
    for name in (f"jupyter_server-{ver}.tar.gz", f"jupyter-server-{ver}.tar.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass
class Result:
    mode: str
    seconds: float
    returncode: int
    outcomes: dict = field(default_factory=dict)  # nodeid -> passed/failed/error/skipped
    messages: dict = field(default_factory=dict)  # nodeid -> the failure's key line
    report: dict = field(default_factory=dict)  # eda_compat_plugin's in-process report
    output: str = ""  # pytest's console output
    flaky: dict = field(default_factory=dict)  # nodeid -> how it failed, before passing alone

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    def counts(self) -> str:
        return ", ".join(f"{self.count(o)} {o}" for o in ("passed", "failed", "error", "skipped"))

    def failing(self) -> set:
        return {n for n, o in self.outcomes.items() if o in ("failed", "error")}

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def run(mode: str, suite: Path, extra_args: list | tuple = (), folders=FOLDERS, workers: int = PEER_WORKERS) -> Result:
    """One run of ``folders`` (or node ids) of the peer suite in a subprocess; ``mode`` is plain
    or eda_gateway."""
    assert mode in ("plain", "eda_gateway"), mode
    with tempfile.TemporaryDirectory(prefix=f"eda_compat_{mode}.") as tmp:
        junit, report = Path(tmp) / "junit.xml", Path(tmp) / "report.json"
        env = dict(os.environ, EDA_COMPAT_MODE=mode, EDA_COMPAT_REPORT=str(report), PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        for name in ("JUPYTER_TOKEN", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            env.pop(name, None)
        for name in [n for n in env if n.startswith("PYTEST_XDIST_")]:  # ours, if we run under xdist
            env.pop(name)
        command = [sys.executable, "-m", "pytest", *PEER_ARGS, "-n", str(workers), f"--junitxml={junit}",
                   f"--basetemp={Path(tmp) / 'basetemp'}", *extra_args, *folders]
        started = time.monotonic()
        log = Path(tmp) / "output.txt"
        with open(log, "w") as out:
            proc = subprocess.Popen(command, cwd=suite, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                returncode = proc.wait(RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its session: pytest and every kernel it started
                proc.wait()
                returncode = -1
        output = log.read_text(errors="replace")
        if returncode == -1:
            output += f"\n{' '.join(command)}: no end after {RUN_TIMEOUT} s, killed\n"
        result = Result(mode, time.monotonic() - started, returncode, output=output)
        if junit.exists():
            _read_junit(junit, result, suite)
        reports = sorted(report.parent.glob(report.name + ".*"))  # one per process
        result.report = _merged_reports(reports)
        keep = os.environ.get("EDA_COMPAT_KEEP")  # a folder for the run's raw files
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"{mode}.out").write_text(output)
            for path in (junit, *reports):
                if path.exists():
                    shutil.copy(path, Path(keep) / f"{mode}.{path.name}")
    return result


def _merged_reports(paths: list) -> dict:
    """eda_compat_plugin's reports of each process, added up ({} when none was written)."""
    merged: dict = {}
    for path in paths:
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, (int, list)) and not isinstance(value, bool):
                merged[key] = merged.get(key, type(value)()) + value
            elif isinstance(value, dict):  # counters, and error_log_tests (first test wins)
                into = merged.setdefault(key, {})
                for k, v in value.items():
                    into[k] = into.get(k, 0) + v if isinstance(v, int) else into.get(k, v)
            else:
                merged[key] = value
    return merged


def run_and_retry(mode: str, suite: Path, expected: set, extra_args: list | tuple = ()) -> Result:
    """``run``, then the failures not in ``expected`` and the tests whose servers hid an error
    again, alone: those that pass there cleanly move to ``Result.flaky``."""
    result = run(mode, suite, extra_args)
    unexpected, hidden = result.failing() - expected, _hidden_errors(result.report)
    again = sorted(unexpected | set(hidden))
    if not again or len(again) > MAX_RETRIED:
        return result
    second = run(mode, suite, extra_args, folders=again, workers=1)
    hidden_again = _hidden_errors(second.report)
    for nodeid in again:
        if nodeid in hidden_again or (nodeid in unexpected and second.outcomes.get(nodeid) != "passed"):
            continue  # the same alone: not the load's doing
        how = []
        if nodeid in unexpected:
            result.outcomes[nodeid] = "passed"
            how.append(result.messages.pop(nodeid, ""))
        if nodeid in hidden:  # e.g. a clean-up that outlasted upstream's 10 s timeout under load
            for key in HIDDEN_ERROR_KEYS:
                result.report[key] = [e for e in result.report.get(key, []) if not e.startswith(nodeid + ": ")]
            how.extend(hidden[nodeid])
        result.flaky[nodeid] = "; ".join(h for h in how if h)
    return result


HIDDEN_ERROR_KEYS = ("initialize_errors", "cleanup_errors")


def _hidden_errors(report: dict) -> dict:
    """nodeid -> the errors eda_compat_plugin saw inside its servers' start or clean-up
    (pytest-jupyter does not let them fail the test)."""
    errors: dict = {}
    for key in HIDDEN_ERROR_KEYS:
        for entry in report.get(key, []):
            nodeid, _, how = entry.partition(": ")
            errors.setdefault(nodeid, []).append(how)
    return errors


# --- in the background, beside the rest of the suite -------------------------------------

_background: dict = {}  # mode -> Future of its Result


def start_in_background(mode: str = "eda_gateway") -> None:
    """Start the peer run now (a subprocess, watched from a thread): the main suite goes on
    meanwhile, and ``background_result`` waits for it. Started once per mode."""
    from concurrent.futures import ThreadPoolExecutor

    if mode not in _background:
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"peer-{mode}")
        expected = set(known_differences()) | set(unstable()) if mode == "eda_gateway" else set()
        _background[mode] = executor.submit(lambda: run_and_retry(mode, peer_suite(), expected))
        executor.shutdown(wait=False)


def background_result(mode: str = "eda_gateway") -> Result:
    """The peer run's result (started now if nobody started it); raises Unavailable as run would."""
    start_in_background(mode)
    return _background[mode].result()


def _nodeid(classname: str, name: str, suite: Path) -> str:
    """pytest's node id from junit's dotted classname (module path, then any classes)."""
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (suite / module).is_file():
            return "::".join([module, *parts[cut:], name])
    return "::".join([*parts, name])


def _read_junit(path: Path, result: Result, suite: Path) -> None:
    for case in ET.parse(path).iter("testcase"):
        nodeid = _nodeid(case.get("classname") or "", case.get("name") or "", suite)
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                # a failure in teardown after a failure in the call stays "failed"
                if outcome != "failed":
                    outcome = "failed" if child.tag == "failure" else "error"
                message = message or _key_line(child)
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        result.outcomes[nodeid] = outcome
        if message:
            result.messages[nodeid] = message


def _key_line(element) -> str:
    """The line that says what went wrong: the exception line of the traceback, else the message."""
    text = element.text or ""
    lines = [line.strip() for line in text.splitlines()]
    key = [line[2:].strip() for line in lines if line.startswith("E ")]
    if key:
        # the first "E" line names the exception; a following one often holds the detail
        return " | ".join(key[:2])[:300]
    return (element.get("message") or "").strip().replace("\n", " ")[:300]


def known_differences() -> dict:
    """nodeid -> one-line justification: tests that must fail with eda_gateway."""
    return dict(json.loads(KNOWN_DIFFERENCES.read_text())["differences"])


def unstable() -> dict:
    """nodeid -> one-line justification: tests whose outcome with eda_gateway depends on timing."""
    return dict(json.loads(KNOWN_DIFFERENCES.read_text()).get("unstable", {}))


def summary(plain: Result | None, eda: Result | None) -> str:
    lines = []
    for result in (plain, eda):
        if result is not None:
            lines.append(f"{result.mode:>11}: {result.counts()} in {result.seconds:.0f} s (pytest exit {result.returncode})")
    if eda is not None:
        r = eda.report
        lines.append(f"in-process: {r.get('servers', 0)} servers, eda_gateway active in "
                     f"{r.get('eda_gateway_active', 0)}; identity: {r.get('identity', {})}")
        for key in HIDDEN_ERROR_KEYS:
            for item in r.get(key, [])[:20]:
                lines.append(f"  {key}: {item}")
    if eda is not None and plain is None:
        lines.append(f"failing with eda_gateway: {len(eda.failing())}")
        lines.extend(f"  {n}\n      {eda.messages.get(n, '')}" for n in sorted(eda.failing()))
    if plain is not None and eda is not None:
        plain_logs = set(plain.report.get("error_logs", {}))
        only = {k: v for k, v in eda.report.get("error_logs", {}).items() if k not in plain_logs}
        if only:
            lines.append("ERROR logs only with eda_gateway (count: logger: message):")
            first = eda.report.get("error_log_tests", {})
            lines.extend(f"  {v:4d}  {k}\n        first in {first.get(k)}" for k, v in list(only.items())[:30])
        regressions = sorted(eda.failing() - plain.failing())
        lines.append(f"fail with eda_gateway, pass plain: {len(regressions)}")
        lines.extend(f"  {n}\n      {eda.messages.get(n, '')}" for n in regressions)
        both = sorted(eda.failing() & plain.failing())
        if both:
            lines.append(f"fail in both: {len(both)}")
            lines.extend(f"  {n}" for n in both)
        gained = sorted(plain.failing() - eda.failing())
        if gained:
            lines.append(f"fail plain, pass with eda_gateway: {len(gained)}")
            lines.extend(f"  {n}" for n in gained)
    if eda is not None:
        known, loose = known_differences(), unstable()
        failing = eda.failing()
        lines.append(f"known differences: {len(known)}, unstable: {len(loose)} "
                     f"({sum(1 for n in loose if n in failing)} of them failed); "
                     f"unlisted failures: {len(failing - set(known) - set(loose))}; "
                     f"listed but not failing: {len(set(known) - failing)}")
    return "\n".join(lines)


def main(argv: list) -> int:
    extra: list = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    modes = argv or ["plain", "eda_gateway"]
    suite = peer_suite()
    print(f"jupyter_server {installed_version()} tests from {suite}; folders: {' '.join(FOLDERS)}", flush=True)
    results = {}
    for mode in modes:
        results[mode] = run(mode, suite, extra)
        print(f"{mode}: {results[mode].counts()} in {results[mode].seconds:.0f} s", flush=True)
        if not results[mode].outcomes:
            print(results[mode].tail(), flush=True)
    print(summary(results.get("plain"), results.get("eda_gateway")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
