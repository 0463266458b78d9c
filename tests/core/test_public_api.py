"""The public surface: a complete, sorted ``__all__``, and the original exception tree."""

from __future__ import annotations

import builtins
import types

import pytest

import agentsight_async
from agentsight_async import _exceptions


def test_all_is_sorted_and_unique() -> None:
    names = list(agentsight_async.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_all_is_complete() -> None:
    """Every public name of the package is in __all__, and every listed name exists."""
    public = {
        name
        for name, value in vars(agentsight_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.add("__version__")
    assert public == set(agentsight_async.__all__)


def test_every_exception_is_exported() -> None:
    assert set(_exceptions.__all__) <= set(agentsight_async.__all__)
    for name in _exceptions.__all__:
        cls = getattr(agentsight_async, name)
        assert issubclass(cls, agentsight_async.AgentSightError), name


# What the original agentsight 0.0.44 package's exceptions.py declares: name -> its bases
# that must still hold (read from the published package).
ORIGINAL_RELATIONS = {
    "InvalidConversationDataException": "ConversationTrackingException",
    "InvalidAnswerDataException": "ConversationTrackingException",
    "InvalidQuestionDataException": "ConversationTrackingException",
    "ConversationApiException": "ConversationTrackingException",
    "ConversationNetworkException": "ConversationTrackingException",
    "NotFoundException": "ConversationApiException",
    "UnauthorizedException": "ConversationApiException",
    "ForbiddenException": "ConversationApiException",
    "AgentSightClientNotInitializedException": "RuntimeError",
}


@pytest.mark.parametrize(("name", "base"), sorted(ORIGINAL_RELATIONS.items()))
def test_original_subclass_relations_hold(name: str, base: str) -> None:
    cls = getattr(agentsight_async, name)
    parent = getattr(agentsight_async, base, None) or getattr(builtins, base)
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    "name",
    [
        "ConversationApiException",
        "ConversationNetworkException",
        "NotFoundException",
        "UnauthorizedException",
        "ForbiddenException",
        "ConversationTrackingException",
        "ApiServerException",
    ],
)
def test_network_and_api_errors_are_not_value_errors(name: str) -> None:
    assert not issubclass(getattr(agentsight_async, name), ValueError)


@pytest.mark.parametrize(
    "name",
    [
        "InvalidConversationDataException",
        "InvalidQuestionDataException",
        "InvalidAnswerDataException",
        "InvalidAttachmentException",
        "MissingConversationIdException",
        "ConfigurationError",
    ],
)
def test_input_errors_stay_value_errors(name: str) -> None:
    assert issubclass(getattr(agentsight_async, name), ValueError)


def test_api_exceptions_carry_their_status() -> None:
    assert agentsight_async.NotFoundException().status_code == 404
    assert agentsight_async.UnauthorizedException().status_code == 401
    assert agentsight_async.ForbiddenException().status_code == 403
