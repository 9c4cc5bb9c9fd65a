from __future__ import annotations

import pytest

from syncd.config import DEFAULT_DATABASE_URL, SETTINGS_DOC, Settings, load_settings


def test_embedded_defaults_with_nothing_set() -> None:
    settings = load_settings({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.uses_embedded_queue


def test_values_are_parsed_by_type() -> None:
    settings = load_settings(
        {
            "SYNCD_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SYNCD_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x",
            "SYNCD_LOG_LEVEL": "DEBUG",
            "SYNCD_API_PORT": "9000",
            "SYNCD_ANONYMOUS_READ": "false",
            "SYNCD_FETCH_READ_TIMEOUT": "2.5",
            "SYNCD_ALLOWED_REDIRECT_HOSTS": "a.example, b.example",
        }
    )
    assert not settings.is_sqlite
    assert not settings.uses_embedded_queue
    assert settings.log_level == "DEBUG"
    assert settings.api_port == 9000
    assert settings.anonymous_read is False
    assert settings.fetch_read_timeout == 2.5
    assert settings.allowed_redirect_hosts == ["a.example", "b.example"]


def test_malformed_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="SYNCD_API_PORT"):
        load_settings({"SYNCD_API_PORT": "eighty"})
    with pytest.raises(ValueError, match="SYNCD_ANONYMOUS_READ"):
        load_settings({"SYNCD_ANONYMOUS_READ": "maybe"})


def test_every_setting_is_documented() -> None:
    from dataclasses import fields

    assert {f.name for f in fields(Settings)} == set(SETTINGS_DOC)


def test_log_level_and_format_are_one_of_their_values() -> None:
    settings = load_settings({"SYNCD_LOG_LEVEL": "warning", "SYNCD_LOG_FORMAT": "JSON"})
    assert (settings.log_level, settings.log_format) == ("WARNING", "json")
    with pytest.raises(ValueError, match="SYNCD_LOG_LEVEL: must be one of DEBUG, INFO"):
        load_settings({"SYNCD_LOG_LEVEL": "bogus"})
    with pytest.raises(ValueError, match="SYNCD_LOG_FORMAT: must be one of json, console, auto"):
        load_settings({"SYNCD_LOG_FORMAT": "xml"})


@pytest.mark.parametrize("command", ["scheduler", "run"])
def test_a_bad_schedule_is_a_configuration_error_at_start(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.cli import main

    monkeypatch.setenv("SYNCD_TICK_CRON", "61 * * * *")
    assert main([command]) == 2
    error = capsys.readouterr().err
    assert error.startswith("syncd: configuration error: SYNCD_TICK_CRON")


def test_retention_days_is_off_by_default_and_never_negative() -> None:
    assert load_settings({}).retention_days == 0
    assert load_settings({"SYNCD_RETENTION_DAYS": "90"}).retention_days == 90
    with pytest.raises(ValueError, match="SYNCD_RETENTION_DAYS: must be 0 or more, not -1"):
        load_settings({"SYNCD_RETENTION_DAYS": "-1"})


def test_max_field_chars_is_65536_by_default_and_at_least_1() -> None:
    assert load_settings({}).max_field_chars == 65_536
    assert load_settings({"SYNCD_MAX_FIELD_CHARS": "1000"}).max_field_chars == 1000
    with pytest.raises(ValueError, match="SYNCD_MAX_FIELD_CHARS: must be 1 or more, not 0"):
        load_settings({"SYNCD_MAX_FIELD_CHARS": "0"})


def test_cors_origins_are_off_by_default_and_checked() -> None:
    assert load_settings({}).cors_origins == []
    listed = load_settings(
        {
            "SYNCD_CORS_ORIGINS": "https://waldur.example.org, http://127.0.0.1:8080",
            "SYNCD_CORS_ALLOW_CREDENTIALS": "true",
        }
    )
    assert listed.cors_origins == ["https://waldur.example.org", "http://127.0.0.1:8080"]
    assert load_settings({"SYNCD_CORS_ORIGINS": "*"}).cors_origins == ["*"]
    for bad in ("https://waldur.example.org/", "waldur.example.org", "null", "*,https://a.b"):
        with pytest.raises(ValueError, match="SYNCD_CORS_ORIGINS"):
            load_settings({"SYNCD_CORS_ORIGINS": bad})


def test_any_origin_never_goes_with_credentials() -> None:
    with pytest.raises(ValueError, match="SYNCD_CORS_ALLOW_CREDENTIALS"):
        load_settings({"SYNCD_CORS_ORIGINS": "*", "SYNCD_CORS_ALLOW_CREDENTIALS": "true"})


def test_events_exchange_is_on_by_default_empty_is_off_and_names_are_checked() -> None:
    assert load_settings({}).events_exchange == "syncd.events"
    assert load_settings({"SYNCD_EVENTS_EXCHANGE": ""}).events_exchange == ""
    assert load_settings({"SYNCD_EVENTS_EXCHANGE": "portal:syncd-events.v1"}).events_exchange
    for bad in ("amq.topic", "has space", "x" * 256, "é"):
        with pytest.raises(ValueError, match="SYNCD_EVENTS_EXCHANGE"):
            load_settings({"SYNCD_EVENTS_EXCHANGE": bad})
    with pytest.raises(ValueError, match="SYNCD_EVENTS_POLL_SECONDS"):
        load_settings({"SYNCD_EVENTS_POLL_SECONDS": "0"})
