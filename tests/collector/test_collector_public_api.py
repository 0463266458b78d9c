"""The collector's public API is its ``__all__``: sorted, complete, and every name resolves."""

from __future__ import annotations

import types

import pytest

import agentsight_collector
from agentsight_async import _store


@pytest.mark.parametrize("module", [agentsight_collector, _store], ids=lambda m: m.__name__)
def test_all_is_sorted_and_every_name_resolves(module: types.ModuleType) -> None:
    names = list(module.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(module, name) is not None, name


def test_all_lists_every_public_name_of_the_collector() -> None:
    public = {
        name
        for name, value in vars(agentsight_collector).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(
            ("agentsight_collector", "agentsight_async")
        )
    }
    assert "Storage" in public
    assert public <= set(agentsight_collector.__all__)


def test_the_collector_storage_is_the_sdk_store_plus_reads() -> None:
    assert issubclass(agentsight_collector.Storage, _store.Store)
    assert agentsight_collector.StoreError is _store.StoreError
    with agentsight_collector.Storage(":memory:") as storage:
        created = storage.create_message(
            {"conversation_id": "c", "content": "hi", "sender": "agent"}
        )
        assert storage.lookup("c") == created["conversation"]
        assert repr(storage) == "Storage(':memory:')"
