"""The app's `state` keeps Starlette's `State` behaviour while reading values as plain attributes."""

from __future__ import annotations

import pytest

from gateway.server.app import AppState, create_app


def test_values_set_are_read_every_way_state_offers() -> None:
    state = AppState()
    state.runtime = marker = object()
    assert state.runtime is marker
    assert state["runtime"] is marker
    assert state._state == {"runtime": marker}
    assert vars(state)["runtime"] is marker  # found by the ordinary lookup, not `State.__getattr__`


def test_a_replaced_value_is_the_one_read() -> None:
    state = AppState()
    state.token = "first"
    state.token = "second"
    assert state.token == "second" and state["token"] == "second"


def test_a_deleted_value_is_gone_from_both_places() -> None:
    state = AppState()
    state.token = "x"
    del state.token
    with pytest.raises(AttributeError):
        state.token  # noqa: B018
    with pytest.raises(KeyError):
        state["token"]


def test_the_app_holds_its_runtime_in_an_app_state() -> None:
    app = create_app("routes.yaml", "providers.yaml")
    assert isinstance(app.state, AppState)
    assert vars(app.state)["runtime"] is app.state._state["runtime"]
