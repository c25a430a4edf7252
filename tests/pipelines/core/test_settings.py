"""Tests for pipelines.core.settings: env vars and flags, the https rule, and a key that never shows."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from pipelines.core.settings import RateLimit, Settings, is_loopback_host, load_settings

KEY = "sk_live_do_not_print_me_123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without any STACKONE_* or LMS_SYNC_* variable from the machine."""
    for name in list(os.environ):
        if name.upper().startswith(("STACKONE_", "LMS_SYNC_")):
            monkeypatch.delenv(name)
    yield


def test_defaults_match_the_design() -> None:
    """Without env or flags: StackOne's URL, 950/60s, 32 workers, 10/30 s timeouts, 6 attempts."""
    settings = Settings()
    assert settings.api_key is None
    assert settings.account_id is None
    assert settings.base_url == "https://api.stackone.com"
    assert settings.rate_limit == RateLimit(950, 60.0)
    assert (settings.concurrency, settings.max_attempts) == (32, 6)
    assert (settings.connect_timeout, settings.read_timeout) == (10.0, 30.0)
    assert settings.backoff_base <= settings.backoff_max


def test_stackone_variables_keep_their_names_and_the_rest_use_the_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STACKONE_API_KEY/ACCOUNT_ID/BASE_URL and LMS_SYNC_* fill the settings, parsed and typed."""
    monkeypatch.setenv("STACKONE_API_KEY", KEY)
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", " acct-1 ")
    monkeypatch.setenv("STACKONE_BASE_URL", "https://eu.api.stackone.com/")
    monkeypatch.setenv("LMS_SYNC_RATE_LIMIT", "300/10s")
    monkeypatch.setenv("LMS_SYNC_CONCURRENCY", "8")
    monkeypatch.setenv("LMS_SYNC_READ_TIMEOUT", "12.5")
    settings = Settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == KEY
    assert settings.account_id == "acct-1"
    assert settings.base_url == "https://eu.api.stackone.com"
    assert settings.rate_limit == RateLimit(300, 10.0)
    assert settings.concurrency == 8
    assert settings.read_timeout == 12.5


def test_the_key_is_read_only_from_stackone_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look-alike variables (LMS_SYNC_API_KEY, API_KEY) are not taken for the key."""
    monkeypatch.setenv("LMS_SYNC_API_KEY", KEY)
    monkeypatch.setenv("API_KEY", KEY)
    assert Settings().api_key is None


def test_flags_override_the_environment_and_none_means_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``load_settings`` puts CLI flags over env vars; a flag left at None keeps the env value."""
    monkeypatch.setenv("LMS_SYNC_RATE_LIMIT", "300/10s")
    monkeypatch.setenv("LMS_SYNC_CONCURRENCY", "8")
    settings = load_settings(rate_limit="5/1s", concurrency=None, api_key="from-flag")
    assert settings.rate_limit == RateLimit(5, 1.0)
    assert settings.concurrency == 8
    assert settings.api_key == SecretStr("from-flag")


def test_a_blank_key_or_account_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exported-but-empty STACKONE_API_KEY counts as missing, not as an empty password."""
    monkeypatch.setenv("STACKONE_API_KEY", "  ")
    monkeypatch.setenv("STACKONE_ACCOUNT_ID", "")
    settings = Settings()
    assert settings.api_key is None
    assert settings.account_id is None


@pytest.mark.parametrize(
    "url",
    [
        "https://api.stackone.com",
        "https://proxy.example.com:8443/stackone",
        "http://localhost:8080",
        "http://127.0.0.1:9000",
        "http://127.10.0.3",
        "http://[::1]:8000",
        "http://sandbox.localhost:8000",
    ],
)
def test_https_everywhere_and_plain_http_on_loopback_are_accepted(url: str) -> None:
    """https is always fine; plain http only to localhost, 127.0.0.0/8 or ::1."""
    assert Settings(base_url=url).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.stackone.com",
        "http://10.0.0.5:8080",
        "http://localhost.evil.com",
        "http://128.0.0.1",
        "ftp://api.stackone.com",
        "api.stackone.com",
        "https://user:pass@api.stackone.com",
        "https://api.stackone.com/?x=1",
    ],
)
def test_other_base_urls_are_a_validation_error(url: str) -> None:
    """Plain http to a non-loopback host, other schemes, credentials or queries are refused."""
    with pytest.raises(ValidationError, match="base URL"):
        Settings(base_url=url)


def test_an_insecure_base_url_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The https rule applies to STACKONE_BASE_URL too, not just to flags."""
    monkeypatch.setenv("STACKONE_BASE_URL", "http://api.stackone.com")
    with pytest.raises(ValidationError, match="https"):
        Settings()


def test_loopback_host_detection() -> None:
    """Loopback names and addresses are recognised; look-alikes are not."""
    assert all(
        map(is_loopback_host, ["localhost", "LOCALHOST.", "127.0.0.1", "127.255.0.9", "::1"])
    )
    assert not any(map(is_loopback_host, ["localhost.example", "10.0.0.1", "::2", "example.com"]))


def test_the_key_is_redacted_in_repr_str_and_every_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr, str, model_dump (python and json) and model_dump_json never contain the key."""
    monkeypatch.setenv("STACKONE_API_KEY", KEY)
    settings = Settings()
    shown = [
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        str(settings.model_dump(mode="json")),
        settings.model_dump_json(),
        f"{settings}",
    ]
    for text in shown:
        assert KEY not in text
        assert "**" in text


def test_validation_errors_do_not_echo_the_key() -> None:
    """A settings error message hides the input values, so a key passed alongside never leaks."""
    with pytest.raises(ValidationError) as caught:
        Settings(api_key=KEY, base_url=f"http://{KEY}.example.com", concurrency="lots")
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_limit", "fast"),
        ("concurrency", 0),
        ("max_attempts", 0),
        ("read_timeout", 0),
        ("connect_timeout", -1),
        ("backoff_max", -1),
    ],
)
def test_impossible_values_are_refused(field: str, value: object) -> None:
    """A bad rate limit, zero workers or attempts, or non-positive timeouts fail validation."""
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_backoff_max_below_base_is_refused() -> None:
    """The backoff ceiling cannot be lower than its base."""
    with pytest.raises(ValidationError, match="backoff_max"):
        Settings(backoff_base=10, backoff_max=1)


def test_the_rate_limit_dumps_as_its_text_and_settings_are_frozen() -> None:
    """The dump shows ``300/10s`` (readable in a report); settings cannot be changed after build."""
    settings = Settings(rate_limit="300/10s")
    assert settings.model_dump()["rate_limit"] == "300/10s"
    with pytest.raises(ValidationError):
        settings.concurrency = 4  # type: ignore[misc]
