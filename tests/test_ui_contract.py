"""One contract for the UI: the TypeScript types are generated from openapi.json and
committed (labextension/src/api-types.ts, `jlpm gen:types`), the level thresholds are
defined once (openapi.json's `Level` schema), the extension's sources pass eslint and
prettier (`jlpm lint:check`), and docs and code cite only files in the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from eda_gateway.levels import LEVEL_THRESHOLDS, level_of

from node_tools import BIN, EXT, ROOT, need
GENERATED = EXT / "src" / "api-types.ts"
# what `jlpm gen:types` and `jlpm lint:check` need from node_modules
NODE_TOOLS = ("openapi-typescript", "eslint", "prettier", "typescript-eslint")




@pytest.fixture(scope="module")
def jlpm() -> list[str]:
    """jlpm with node_modules installed (as tests/test_labextension.py does for jest)."""
    need("node")
    tool = need("jlpm")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", CI="true")
    if not all((EXT / "node_modules" / name).exists() for name in NODE_TOOLS):
        subprocess.run([tool, "install"], cwd=EXT, env=env, check=True, timeout=600)
    return [tool]


def run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", CI="true")
    return subprocess.run(command, cwd=EXT, env=env, capture_output=True, text=True, timeout=timeout)


def document() -> dict:
    return json.loads(resources.files("eda_gateway").joinpath("openapi.json").read_text(encoding="utf-8"))


def test_committed_types_are_generated_from_openapi_json(jlpm, tmp_path):
    fresh = tmp_path / "api-types.ts"
    done = run([*jlpm, "gen:types", str(fresh)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert fresh.read_text() == GENERATED.read_text(), (
        "labextension/src/api-types.ts is not what eda_gateway/openapi.json gives: "
        "run `jlpm gen:types` in labextension/ and commit the result"
    )


def test_generated_types_carry_the_fields_the_hand_copy_had_lost():
    text = GENERATED.read_text()
    assert re.search(r"\bisolation\?: \(", text), "SystemStats.isolation"
    assert re.search(r"\btruncated\?: boolean", text), "ExecuteResult.truncated"


def test_level_thresholds_are_defined_once_in_openapi_json():
    level = document()["components"]["schemas"]["Level"]
    assert level["enum"] == ["normal", "medium", "high", "limited"]
    thresholds = level["x-thresholds"]
    assert dict(LEVEL_THRESHOLDS) == thresholds
    assert 0 < thresholds["medium"] < thresholds["high"] < 1
    generated = re.search(r"LEVEL_THRESHOLDS = \{\s*medium: ([\d.]+),\s*high: ([\d.]+)\s*\}", GENERATED.read_text())
    assert generated and (float(generated[1]), float(generated[2])) == (thresholds["medium"], thresholds["high"])
    # both rate-limit-status and admin/users send a Level
    schemas = document()["components"]["schemas"]
    assert schemas["RateLimitStatus"]["properties"]["status"] == {"$ref": "#/components/schemas/Level"}
    user = schemas["AdminUsers"]["properties"]["users"]["items"]
    assert user["properties"]["status"] == {"$ref": "#/components/schemas/Level"}


def test_server_levels_split_at_the_thresholds():
    medium, high = LEVEL_THRESHOLDS["medium"], LEVEL_THRESHOLDS["high"]
    assert level_of(0.0, limited=False) == "normal"
    assert level_of(medium - 1e-9, limited=False) == "normal"
    assert level_of(medium, limited=False) == "medium"
    assert level_of(high - 1e-9, limited=False) == "medium"
    assert level_of(high, limited=False) == "high"
    assert level_of(0.0, limited=True) == "limited"


def test_the_ui_reads_no_numbers_out_of_english():
    """Retry seconds come from Retry-After, the 429 body and metadata.eda_gateway."""
    for source in sorted((EXT / "src").rglob("*.ts")):
        text = source.read_text()
        for pattern in (r"\\d\+\\s\*s", r"(?i)retry\|wait\|again"):
            assert not re.search(pattern, text), f"{source.relative_to(ROOT)} parses numbers from text"


def test_lint_check_passes(jlpm):
    done = run([*jlpm, "lint:check"])
    assert done.returncode == 0, done.stdout + done.stderr


# Paths that are cited but rightly not in git: jupyter_server's own tests, which
# tests/compat fetches at test time.
NOT_IN_GIT = {"tests/services/kernels"}
CITED_PATH = re.compile(r"(?<![\w/.-])((?:benchmarks|docs|eda_gateway|labextension|scripts|tests)/[\w./-]*\w)")
CITED_NOTE = re.compile(r"(?<![\w/.-])([A-Z][A-Z_]+\.md)\b")


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def test_docs_and_code_cite_only_files_in_the_repository():
    files = tracked_files()
    if not files:
        pytest.skip("not a git checkout")
    names = {Path(f).name for f in files}
    scanned = [
        f
        for f in files
        if f == "README.md"
        or (f.startswith(("docs/", "eda_gateway/", "labextension/src/", "labextension/scripts/", "labextension/test/"))
            and f.endswith((".md", ".py", ".ts", ".mjs")))
    ]
    missing = []
    for name in scanned:
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            for path in CITED_PATH.findall(line):
                if path not in NOT_IN_GIT and not (ROOT / path).exists() and not ignored(path):
                    missing.append(f"{name}:{number}: {path}")
            missing += [f"{name}:{number}: {note}" for note in CITED_NOTE.findall(line) if note not in names]
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def ignored(path: str) -> bool:
    """A build output (e.g. eda_gateway/labextension) is cited on purpose."""
    # a folder's pattern ("name/") matches the path only with its slash
    done = subprocess.run(["git", "check-ignore", path, f"{path}/"], cwd=ROOT, capture_output=True)
    return done.returncode == 0
