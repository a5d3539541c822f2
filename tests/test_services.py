"""config/services.toml: validation errors and the dependency walk of experts_for."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.config import ConfigError
from mailbot.services import Expert, Service, ServiceDirectory, load_services

from tests.support.factory import SERVICES_TOML

REPO = Path(__file__).resolve().parents[1]


def load(tmp_path: Path, text: str) -> ServiceDirectory:
    path = tmp_path / "services.toml"
    path.write_text(text, encoding="utf-8")
    return load_services(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    assert message.startswith(str(tmp_path / "services.toml") + ": ")
    return message


SERVICE = '''
[services.api]
description = "API"
{extra}
[[services.api.experts]]
name = "Alice"
address = "{address}"
role = "on-call"
{expert_extra}
'''


def service(address="alice@example.com", extra="", expert_extra="") -> str:
    return SERVICE.format(address=address, extra=extra, expert_extra=expert_extra)


def test_the_shipped_example_is_valid_and_realistic():
    directory = load_services(REPO / "config" / "services.toml")
    assert 5 <= len(directory) <= 8
    for svc in directory:
        assert svc.description and svc.experts
        assert all(e.address.endswith("example.com") for e in svc.experts)
    assert directory.unknown(["api", "web", "db", "postgres", "DNS"]) == []


def test_missing_file_is_an_empty_directory(tmp_path):
    directory = load_services(tmp_path / "absent.toml")
    assert len(directory) == 0
    assert directory.experts_for(["api"]) == []
    assert directory.unknown(["api"]) == ["api"]


def test_valid_file_loads_into_frozen_dataclasses(tmp_path):
    directory = load(tmp_path, SERVICES_TOML)
    checkout = directory.get("CART")  # alias, any case
    assert checkout == Service(
        name="checkout", description="Checkout pages and the cart",
        experts=(Expert("Olga Petrova", "olga@example.com", "on-call"),
                 Expert("Pat Kim", "pat@example.com", "owner")),
        escalation="Page the checkout on-call, then the owner.", depends_on=("pay",),
        aliases=("cart",), runbook="https://wiki.example.com/checkout")
    with pytest.raises(AttributeError):
        checkout.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("extra, expert_extra, expected", [
    ('owner = "bob"', "", "unknown key 'owner' in [services.api]"),
    ("", 'phone = "+1 555"', "unknown key 'phone' in [services.api] expert 1"),
])
def test_unknown_keys_are_named(tmp_path, extra, expert_extra, expected):
    assert expected in error(tmp_path, service(extra=extra, expert_extra=expert_extra))


def test_unknown_top_level_key(tmp_path):
    assert "unknown top-level key 'api'" in error(
        tmp_path, '[api]\ndescription = "x"\n')


@pytest.mark.parametrize("address", [
    "alice", "alice@", "@example.com", "alice@example", "alice smith@example.com",
    "<alice@example.com>", "alice@example.com?subject=x", "a@b@example.com",
])
def test_bad_addresses(tmp_path, address):
    message = error(tmp_path, service(address=address))
    assert f"[services.api] expert 1 address: {address!r} is not an email address" in message


def test_unknown_dependency(tmp_path):
    message = error(tmp_path, service(extra='depends_on = ["db", "cache"]'))
    assert "[services.api] depends_on: 'db' is not a service in this file" in message


@pytest.mark.parametrize("text, expected", [
    ('[services.api]\ndescription = "x"\n', "[services.api] needs at least one"),
    (service().replace('description = "API"', ""), "[services.api] description is required"),
    (service(extra='depends_on = "db"'), "depends_on must be a list of strings"),
    (service(extra='runbook = "javascript:alert(1)"'), "is not an http(s) URL"),
    ("[services.api\n", "invalid TOML"),
    (service().replace("services.api", "services.'bad name'"), "service names are letters"),
    (service(extra='aliases = ["rest"]') + service(extra='aliases = ["REST"]').replace(
        "services.api", "services.web"), "[services.web] aliases: 'rest' is already used"),
    (service() + service().replace("services.api", "services.API"), "already a service name"),
])
def test_other_mistakes_are_one_clear_line(tmp_path, text, expected):
    assert expected in error(tmp_path, text)


def test_experts_for_follows_dependencies_transitively(tmp_path):
    directory = load(tmp_path, SERVICES_TOML)
    got = [(r.service, r.expert.name, r.via) for r in directory.experts_for(["checkout"])]
    assert got == [
        ("checkout", "Olga Petrova", None),
        ("checkout", "Pat Kim", None),
        ("pay", "Quinn Ade", "checkout"),
        ("ledger", "Rita Gomez", "pay"),
        ("ledger", "Sam Ortiz", "pay"),
    ]  # pay -> checkout closes a cycle: checkout is not listed twice


def test_named_services_keep_via_none_and_appear_once(tmp_path):
    directory = load(tmp_path, SERVICES_TOML)
    refs = directory.experts_for(["ledger", "nope", "Cart", "checkout", "search"])
    by_service = {}
    for ref in refs:
        by_service.setdefault(ref.service, set()).add(ref.via)
    assert by_service == {"ledger": {None}, "checkout": {None}, "search": {None},
                          "pay": {"checkout"}}
    assert len(refs) == 6
    assert directory.unknown(["ledger", "nope", "Cart", "nope", "Nope"]) == ["nope", "Nope"]


def test_self_and_mutual_cycles_terminate(tmp_path):
    text = "".join(
        f'[services.{n}]\ndescription = "{n}"\ndepends_on = {deps}\n'
        f'[[services.{n}.experts]]\naddress = "{n}@example.com"\n'
        for n, deps in [("a", '["b", "a"]'), ("b", '["c"]'), ("c", '["a", "b"]')]
    )
    directory = load(tmp_path, text)
    got = [(r.service, r.via) for r in directory.experts_for(["b"])]
    assert got == [("b", None), ("c", "b"), ("a", "c")]
    assert directory.get("a").experts[0] == Expert("a@example.com", "a@example.com", "expert")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(
    st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefgh"), max_size=4),
    min_size=1),
    st.lists(st.sampled_from("abcdefghz"), max_size=4))
def test_experts_for_is_the_reachable_set_each_once(graph, named):
    services = [Service(n, n, (Expert(n, f"{n}@example.com", "on-call"),),
                        depends_on=tuple(d for d in deps if d in graph))
                for n, deps in graph.items()]
    directory = ServiceDirectory(services)
    reachable, todo = set(), [n for n in named if n in graph]
    while todo:
        n = todo.pop()
        if n not in reachable:
            reachable.add(n)
            todo.extend(directory.get(n).depends_on)
    refs = directory.experts_for(named)
    assert [r.service for r in refs] == list(dict.fromkeys(r.service for r in refs))
    assert {r.service for r in refs} == reachable
    for r in refs:
        if r.via is None:
            assert r.service in named
        else:
            assert r.service in directory.get(r.via).depends_on
    assert directory.unknown(named) == list(dict.fromkeys(n for n in named if n not in graph))
