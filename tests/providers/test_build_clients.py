"""``build_clients``: provider documents plus the environment (or a sandbox) become clients."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.errors import ConfigError
from reconciler.providers import (
    PerfTestClient,
    SandboxTarget,
    TolokaClient,
    build_clients,
    effective_settings,
    override_variable,
)
from reconciler.resources import ProviderConfig, SourceRef

CLOUD = "0123456789abcdef0123456789abcdef"
OTHER_CLOUD = "fedcba9876543210fedcba9876543210"


def perftest_config(name: str = "perftest", **credentials: str) -> ProviderConfig:
    spec: dict[str, Any] = {
        "cloud_project_id": CLOUD,
        "region": "cn-north-4",
        "credentials": credentials or {"access_key_env": "CPTS_AK", "secret_key_env": "CPTS_SK"},
        "rate_limit": 50.0,
    }
    return ProviderConfig(name=name, type="perftest", spec=spec, source=SourceRef("providers.yaml", 1))


def toloka_config(name: str = "toloka", scheme: str = "ApiKey") -> ProviderConfig:
    spec = {"endpoint": "https://toloka.dev", "credentials": {"token_env": "TOLOKA_KEY", "scheme": scheme}}
    return ProviderConfig(name=name, type="toloka", spec={**spec, "rate_limit": 100.0}, source=SourceRef("p", 2))


CONFIGS = {"perftest": perftest_config(), "toloka": toloka_config()}
SECRETS = {"CPTS_AK": "ak-value-123", "CPTS_SK": "sk-value-456", "TOLOKA_KEY": "toloka-value-789"}


def test_clients_are_built_from_the_documents_and_the_environment() -> None:
    clients = build_clients(CONFIGS, environ=SECRETS)
    perftest, toloka = clients["perftest"], clients["toloka"]
    assert isinstance(perftest, PerfTestClient) and isinstance(toloka, TolokaClient)
    assert perftest.http.base_url == "https://cpts.cn-north-4.myhuaweicloud.com"
    assert perftest.cloud_project_id == CLOUD
    assert toloka.http.base_url == "https://toloka.dev/api/v1"
    for client in clients.values():
        client.close()


def test_environment_overrides_use_the_provider_name() -> None:
    config = perftest_config(name="cpts-prod.eu")
    assert override_variable("cpts-prod.eu", "endpoint") == "RECONCILER_CPTS_PROD_EU_ENDPOINT"
    environ = {
        "RECONCILER_CPTS_PROD_EU_REGION": "ap-southeast-3",
        "RECONCILER_CPTS_PROD_EU_CLOUD_PROJECT_ID": OTHER_CLOUD,
        "RECONCILER_CPTS_PROD_EU_RATE_LIMIT": "5",
    }
    settings = effective_settings(config, environ)
    assert settings["endpoint"] == "https://cpts.ap-southeast-3.myhuaweicloud.com"
    assert (settings["cloud_project_id"], settings["rate_limit"]) == (OTHER_CLOUD, 5.0)
    environ["RECONCILER_CPTS_PROD_EU_ENDPOINT"] = "http://127.0.0.1:9999"
    assert effective_settings(config, environ)["endpoint"] == "http://127.0.0.1:9999"
    toloka = effective_settings(toloka_config(), {"RECONCILER_TOLOKA_ENDPOINT": "https://sandbox.toloka.dev"})
    assert toloka["endpoint"] == "https://sandbox.toloka.dev"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECONCILER_PERFTEST_RATE_LIMIT", "fast"),
        ("RECONCILER_PERFTEST_RATE_LIMIT", "0"),
        ("RECONCILER_PERFTEST_ENDPOINT", "cpts.example.com"),
        ("RECONCILER_PERFTEST_CLOUD_PROJECT_ID", "42"),
    ],
)
def test_a_bad_override_is_a_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        build_clients(CONFIGS, environ={**SECRETS, variable: value})


@pytest.mark.parametrize("missing", ["CPTS_AK", "CPTS_SK", "TOLOKA_KEY"])
def test_missing_credential_variable_names_the_variable_not_the_value(missing: str) -> None:
    environ = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        build_clients(CONFIGS, environ=environ)
    message = str(caught.value)
    assert missing in message
    assert all(value not in message for value in SECRETS.values())


def test_an_empty_credential_variable_is_reported_as_empty() -> None:
    with pytest.raises(ConfigError, match="TOKEN_VAR is empty"):
        build_clients({"p": perftest_config(token_env="TOKEN_VAR")}, environ={"TOKEN_VAR": " "})


def test_a_token_provider_needs_only_its_token() -> None:
    clients = build_clients({"p": perftest_config(token_env="TOKEN_VAR")}, environ={"TOKEN_VAR": "t"})
    assert isinstance(clients["p"], PerfTestClient)


def test_secrets_never_show_in_a_clients_repr() -> None:
    clients = build_clients(CONFIGS, environ=SECRETS)
    for client in clients.values():
        shown = repr(vars(client)) + repr(vars(client.http))
        assert all(value not in shown for value in SECRETS.values())


def test_a_sandbox_target_needs_no_environment() -> None:
    clients = build_clients(CONFIGS, environ={}, sandbox=SandboxTarget(url="http://127.0.0.1:8765"))
    perftest, toloka = clients["perftest"], clients["toloka"]
    assert isinstance(perftest, PerfTestClient) and isinstance(toloka, TolokaClient)
    assert perftest.http.base_url == "http://127.0.0.1:8765"
    assert perftest.cloud_project_id == SandboxTarget.cloud_project_id
    assert toloka.http.base_url == "http://127.0.0.1:8765/api/v1"


def test_building_clients_opens_no_connection() -> None:
    # Nothing listens on this endpoint; building must still succeed (connections open on first request).
    config = perftest_config()
    clients = build_clients({"p": config}, environ={**SECRETS, "RECONCILER_PERFTEST_ENDPOINT": "http://127.0.0.1:9"})
    clients["p"].close()


def test_an_unknown_provider_type_is_a_config_error() -> None:
    odd = ProviderConfig(name="x", type="jira", spec={}, source=SourceRef("p", 1))
    with pytest.raises(ConfigError, match="jira"):
        build_clients({"x": odd}, environ={})
