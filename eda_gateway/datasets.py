"""Datasets ("sources") admins configure, and who may use which.

``c.EDAGateway.datasets = {"sales": {"path": "/data/sales.csv", "users": ["alice"],
"groups": ["analysts"], "description": "Daily sales 2024"}}``. A user may use a
dataset assigned to them by name or through one of their groups; admins may use
every dataset. Ids are plain names: anything that could act as a path
(``..``, ``/``, a leading dot) is refused before it is looked up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from traitlets import TraitError

DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DATASET_KEYS = frozenset({"path", "users", "groups", "description"})

# File types preloaded into ``df`` (pandas reader per suffix).
DATAFRAME_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet", ".json": "read_json"}


def is_valid_id(dataset_id: object) -> bool:
    return isinstance(dataset_id, str) and bool(DATASET_ID.fullmatch(dataset_id)) and ".." not in dataset_id


def validate_datasets(datasets: dict) -> None:
    """Raise TraitError naming the bad entry of EDAGateway.datasets."""
    for dataset_id, spec in datasets.items():
        where = f"EDAGateway.datasets[{dataset_id!r}]"
        if not is_valid_id(dataset_id):
            raise TraitError(f"{where}: ids are letters, digits, '_', '-', '.' (no '..', at most 64)")
        if not isinstance(spec, dict):
            raise TraitError(f"{where} must be a dict with 'path', 'users', 'groups', 'description'")
        unknown = set(spec) - DATASET_KEYS
        if unknown:
            raise TraitError(f"{where}: unknown keys {sorted(unknown)}")
        path = spec.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise TraitError(f"{where}['path'] must be an absolute path")
        if not os.path.exists(path):
            raise TraitError(f"{where}['path'] does not exist: {path}")
        for key in ("users", "groups"):
            value = spec.get(key, [])
            if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
                raise TraitError(f"{where}[{key!r}] must be a list of names")
        if not isinstance(spec.get("description", ""), str):
            raise TraitError(f"{where}['description'] must be a string")


@dataclass(frozen=True)
class Dataset:
    id: str
    path: str
    users: frozenset[str]
    groups: frozenset[str]
    description: str = ""

    @property
    def dataframe_reader(self) -> str | None:
        """The pandas reader for this file, if it is one ``df`` is preloaded from."""
        if not os.path.isfile(self.path):
            return None
        return DATAFRAME_READERS.get(os.path.splitext(self.path)[1].lower())

    def summary(self) -> dict:
        return {"id": self.id, "description": self.description}


class DatasetError(Exception):
    """Why a dataset cannot be used: ``status`` and ``code`` for the JSON answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class DatasetCatalogue:
    """The configured datasets and the access rule."""

    def __init__(
        self,
        config: dict,
        is_admin: Callable[[str], bool],
        groups_of: Callable[[str], Iterable[str]],
    ):
        validate_datasets(config)
        self._datasets = {
            dataset_id: Dataset(
                id=dataset_id,
                path=os.path.abspath(spec["path"]),
                users=frozenset(spec.get("users", ())),
                groups=frozenset(spec.get("groups", ())),
                description=spec.get("description", ""),
            )
            for dataset_id, spec in config.items()
        }
        self._is_admin = is_admin
        self._groups_of = groups_of

    def may_use(self, username: str, dataset: Dataset) -> bool:
        if self._is_admin(username) or username in dataset.users:
            return True
        return not dataset.groups.isdisjoint(self._groups_of(username))

    def for_user(self, username: str) -> list[Dataset]:
        return [d for _, d in sorted(self._datasets.items()) if self.may_use(username, d)]

    def resolve(self, dataset_id: str, username: str) -> Dataset:
        """The dataset ``username`` asked for, or a DatasetError (400 / 404 / 403)."""
        if not is_valid_id(dataset_id):
            raise DatasetError(400, "invalid_source_id", "source ids are letters, digits, '_', '-', '.'")
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            raise DatasetError(404, "unknown_source", f"no dataset named {dataset_id!r}")
        if not self.may_use(username, dataset):
            raise DatasetError(403, "forbidden_source", f"dataset {dataset_id!r} is not assigned to you")
        return dataset
