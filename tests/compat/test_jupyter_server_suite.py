"""Compatibility tier: jupyter_server's own tests, run against a server with eda_gateway enabled.

The installed jupyter_server's tests (tests/services/kernels, sessions and contents of its
sdist from PyPI, fetched once into a git-ignored cache: ``jupyter_server_suite.py``) run in
a subprocess, every in-process server of pytest-jupyter with eda_gateway enabled in
single-user mode (jupyter_server's default identity, one token) and default limits.

Strict both ways: every failing test must be listed, with its justification, in
``jupyter_server_known_differences.json``, and every listed test must still fail (a
listed test that passes is a stale entry: remove it). Its ``unstable`` entries are tests
whose outcome with eda_gateway depends on timing (each says why); they may pass or fail.
Any other failure, and any test whose server hid an error, is run again alone
(``jupyter_server_suite.run_and_retry``): one that passes there is a warning, not a failure.
``scripts/compat.sh`` runs the same tests on a plain server too and prints both counts.

Without the download (no network, no PyPI): skip, or fail under ``EDA_STRICT=1``.
"""

from __future__ import annotations

import os
import warnings

import pytest

import jupyter_server_suite as peer

STRICT = os.environ.get("EDA_STRICT") == "1"

pytestmark = pytest.mark.timeout(peer.RUN_TIMEOUT + 900)  # the download, then one whole run


def missing(what: str):
    if STRICT:
        pytest.fail(f"{what} (EDA_STRICT=1: a missing capability fails)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def eda_run() -> peer.Result:
    try:
        return peer.background_result("eda_gateway")  # tests/conftest.py starts it early
    except peer.Unavailable as e:
        missing(f"jupyter_server's own tests are not available: {e}")


def test_known_differences_are_justified():
    known, loose = peer.known_differences(), peer.unstable()
    assert not set(known) & set(loose), "a test is either a difference or unstable"
    for nodeid, why in {**known, **loose}.items():
        assert nodeid.startswith(tuple(f + "/" for f in peer.FOLDERS)) and "::" in nodeid, nodeid
        assert isinstance(why, str) and why.strip() and "\n" not in why, f"{nodeid}: give one line of why"


def test_what_failed_or_hid_an_error_only_under_load_is_flaky_and_what_recurs_alone_stays(monkeypatch):
    slow, broken, known = (f"tests/services/sessions/test_api.py::test_{n}" for n in ("slow", "broken", "known"))
    timeout = "Failed: Timeout (>10.0s) from pytest-timeout."
    runs = []

    def fake_run(mode, suite, extra_args=(), folders=peer.FOLDERS, workers=peer.PEER_WORKERS):
        runs.append(list(folders))
        # `known` always fails (a known difference); its clean-up hid an error only under load
        result = peer.Result(mode, 1.0, 0, outcomes={slow: "passed", broken: "passed", known: "failed"})
        errors = [f"{broken}: {timeout}"] + ([f"{slow}: {timeout}", f"{known}: {timeout}"] if len(runs) == 1 else [])
        result.report = {"cleanup_errors": errors}
        return result

    monkeypatch.setattr(peer, "run", fake_run)
    result = peer.run_and_retry("eda_gateway", None, expected={known})
    assert runs[1] == sorted([slow, broken, known])  # again, alone
    assert set(result.flaky) == {slow, known} and "Timeout" in result.flaky[slow]
    assert result.outcomes[known] == "failed"  # still the known difference it is
    assert result.report["cleanup_errors"] == [f"{broken}: {timeout}"]


def test_the_peer_suite_ran(eda_run):
    # 0: all passed, 1: some failed; anything else is an interrupted run or a usage error
    assert eda_run.returncode in (0, 1), f"pytest exit {eda_run.returncode}:\n{eda_run.tail()}"
    assert eda_run.count("passed") > 300, f"{eda_run.counts()}:\n{eda_run.tail()}"


def test_every_server_ran_eda_gateway_in_single_user_mode(eda_run):
    report = eda_run.report
    assert report, f"eda_compat_plugin wrote no report:\n{eda_run.tail()}"
    assert report["servers"] > 0
    assert report["eda_gateway_active"] == report["servers"], report
    assert all(mode.startswith("single-user mode") for mode in report["identity"]), report["identity"]


def test_no_error_hidden_in_process(eda_run):
    """pytest-jupyter swallows errors of the server's clean-up; a start-up error fails only its test."""
    report = eda_run.report
    hidden = [e for key in peer.HIDDEN_ERROR_KEYS for e in report.get(key, [])]
    assert not hidden, "\n".join(hidden)


def test_every_failure_is_a_known_difference(eda_run):
    for nodeid, how in eda_run.flaky.items():  # shown in the warnings summary: worth a look if it recurs
        warnings.warn(f"{nodeid} failed in the whole run ({how}) and passed alone", stacklevel=1)
    known = set(peer.known_differences()) | set(peer.unstable())
    unexpected = sorted(eda_run.failing() - known)
    assert not unexpected, (
        f"{len(unexpected)} of jupyter_server's tests fail with eda_gateway and are not in "
        f"{peer.KNOWN_DIFFERENCES.name} ({eda_run.counts()}):\n"
        + "\n".join(f"{n}\n    {eda_run.messages.get(n, '')}" for n in unexpected)
    )


def test_no_known_difference_passes(eda_run):
    known = peer.known_differences()
    stale = sorted(set(known) - eda_run.failing())
    # unstable tests may pass or fail, but must still exist
    stale += sorted(n for n in peer.unstable() if n not in eda_run.outcomes)
    assert not stale, (
        f"listed in {peer.KNOWN_DIFFERENCES.name} but not failing (remove them):\n"
        + "\n".join(f"{n}: {eda_run.outcomes.get(n, 'not run')}" for n in stale)
    )
