"""Datasets: configuration checks and who may use which (README, EDAGateway.datasets)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from eda_gateway.datasets import DatasetCatalogue, DatasetError, validate_datasets


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sales.csv").write_text("a\n1\n")
    (tmp_path / "hr.parquet").write_bytes(b"")
    return tmp_path


@pytest.fixture
def catalogue(files):
    config = {
        "sales": {"path": str(files / "sales.csv"), "users": ["alice"], "groups": ["analysts"], "description": "S"},
        "hr": {"path": str(files / "hr.parquet"), "users": ["carol"]},
        "open.v2": {"path": str(files), "groups": ["everyone"]},
    }
    groups = {"analysts": ["bob"], "everyone": ["alice", "bob", "carol"]}
    return DatasetCatalogue(
        config,
        is_admin=lambda user: user == "admin",
        groups_of=lambda user: [g for g, members in groups.items() if user in members],
    )


def test_assignment_by_user_by_group_and_admin(catalogue):
    assert [d.id for d in catalogue.for_user("alice")] == ["open.v2", "sales"]
    assert [d.id for d in catalogue.for_user("bob")] == ["open.v2", "sales"]  # via analysts
    assert [d.id for d in catalogue.for_user("carol")] == ["hr", "open.v2"]
    assert [d.id for d in catalogue.for_user("dave")] == []
    assert [d.id for d in catalogue.for_user("admin")] == ["hr", "open.v2", "sales"]
    assert catalogue.resolve("sales", "bob").description == "S"
    assert catalogue.resolve("hr", "admin").id == "hr"


@pytest.mark.parametrize(
    "source, user, status",
    [
        ("hr", "alice", 403),
        ("sales", "dave", 403),
        ("nope", "alice", 404),
        ("nope", "admin", 404),
        ("..", "alice", 400),
        ("../sales", "alice", 400),
        ("sales/..", "alice", 400),
        ("a..b", "admin", 400),
        (".hidden", "admin", 400),
        ("/etc/passwd", "admin", 400),
        ("", "alice", 400),
        ("x" * 65, "alice", 400),
        ("sales\x00", "alice", 400),
    ],
)
def test_refusals(catalogue, source, user, status):
    with pytest.raises(DatasetError) as refused:
        catalogue.resolve(source, user)
    assert refused.value.status == status
    assert refused.value.code and refused.value.message


def test_dataframe_reader_by_file_type(catalogue):
    assert catalogue.resolve("sales", "admin").dataframe_reader == "read_csv"
    assert catalogue.resolve("hr", "admin").dataframe_reader == "read_parquet"
    assert catalogue.resolve("open.v2", "admin").dataframe_reader is None  # a folder


@pytest.mark.parametrize(
    "config, named",
    [
        ({"../x": {"path": "/tmp"}}, "ids are"),
        ({"sales": "/tmp/sales.csv"}, "must be a dict"),
        ({"sales": {"path": "relative.csv"}}, "absolute path"),
        ({"sales": {"path": "/no/such/file.csv"}}, "does not exist"),
        ({"sales": {"path": "/tmp", "users": "alice"}}, "list of names"),
        ({"sales": {"path": "/tmp", "groups": [1]}}, "list of names"),
        ({"sales": {"path": "/tmp", "owner": "x"}}, "unknown keys"),
        ({"sales": {"path": "/tmp", "description": 3}}, "['description'] must be a string"),
    ],
)
def test_bad_configuration_is_named(config, named):
    with pytest.raises(TraitError, match="EDAGateway.datasets") as bad:
        validate_datasets(config)
    assert named in str(bad.value)


def test_server_refuses_to_start_with_a_missing_dataset_path(refused_start):
    said = refused_start({"EDAGateway": {"datasets": {"sales": {"path": "/no/such/sales.csv", "users": ["alice"]}}}})
    assert "EDAGateway.datasets['sales']['path'] does not exist" in said
