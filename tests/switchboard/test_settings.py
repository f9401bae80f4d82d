from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli import main
from switchboard.errors import SettingsError
from switchboard.settings import Settings, describe, load_settings


def test_defaults_load_without_file_or_environment() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.http.port == 8080
    assert settings.data_dir == Path("var")


def test_environment_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('data_dir = "/srv/sb"\n[http]\nport = 9000\nhost = "0.0.0.0"\n[node]\nworkers = 3\n')
    environ = {"SWITCHBOARD_HTTP_PORT": "9100", "SWITCHBOARD_NODE_RTC_ADDRESSES": "10.0.0.2, 10.0.0.3"}
    settings = load_settings(config, environ)
    assert settings.http.port == 9100  # environment wins
    assert settings.http.host == "0.0.0.0"  # file wins over default
    assert settings.data_dir == Path("/srv/sb")
    assert settings.node.workers == 3
    assert settings.node.rtc_addresses == ("10.0.0.2", "10.0.0.3")


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[api]\nport = 9999\n")
    assert load_settings(environ={"SWITCHBOARD_CONFIG": str(config)}).api.port == 9999


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"SWITCHBOARD_HTTP_PROT": "1"}, "http.prot"),
        ({"SWITCHBOARD_NOPE": "1"}, "nope"),
        ({"SWITCHBOARD_TOKENS_ROOM_TTL": "1"}, "tokens.room_ttl"),
    ],
)
def test_unknown_environment_key_is_refused_by_name(environ: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ)
    assert err.value.key == key
    assert key in str(err.value)


def test_unknown_file_key_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[node]\nwokers = 2\n")
    with pytest.raises(SettingsError, match=r"node\.wokers: is not a known setting"):
        load_settings(config, {})


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"SWITCHBOARD_HTTP_PORT": "eighty"}, "http.port"),
        ({"SWITCHBOARD_HTTP_PORT": "70000"}, "http.port"),
        ({"SWITCHBOARD_NODE_WORKERS": "-1"}, "node.workers"),
        ({"SWITCHBOARD_TOKENS_ROOM_TTL_S": "0"}, "tokens.room_ttl_s"),
        ({"SWITCHBOARD_LOG_LEVEL": "LOUD"}, "log.level"),
        ({"SWITCHBOARD_REDIS_URL": "http://x"}, "redis_url"),
        ({"SWITCHBOARD_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"SWITCHBOARD_API_ADMIN_EMAIL": "nobody"}, "api.admin_email"),
    ],
)
def test_bad_value_is_refused_by_name(environ: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ)
    assert err.value.key == key


def test_bad_types_in_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[http]\nport = true\n')
    with pytest.raises(SettingsError, match=r"http\.port"):
        load_settings(config, {})
    config.write_text('http = 3\n')
    with pytest.raises(SettingsError, match="http: must be a table"):
        load_settings(config, {})
    config.write_text('[http\n')
    with pytest.raises(SettingsError, match="config file"):
        load_settings(config, {})


def test_describe_masks_secrets() -> None:
    settings = load_settings(environ={
        "SWITCHBOARD_REDIS_URL": "redis://:hunter2@redis:6379/0",
        "SWITCHBOARD_DATABASE_URL": "postgresql://sb:s3cret@db/sb",
    })
    shown = dict(describe(settings))
    assert shown["redis_url"] == "'redis://:***@redis:6379/0'"
    assert shown["database_url"] == "'postgresql://sb:***@db/sb'"
    assert "hunter2" not in repr(shown) and "s3cret" not in repr(shown)
    assert shown["http.port"] == "8080"
    keys = dict(describe(load_settings(environ={"SWITCHBOARD_PAYMENTS_STRIPE_API_KEY": "sk_test_hunter2",
                                                "SWITCHBOARD_PAYMENTS_STRIPE_WEBHOOK_SECRET": "whsec_s3cret",
                                                "SWITCHBOARD_PAYMENTS_PACKS": "a:10:100,b:20:150"})))
    assert keys["payments.stripe_api_key"] == keys["payments.stripe_webhook_secret"] == "'***'"
    assert keys["payments.packs"] == "('a:10:100', 'b:20:150')"


def test_payment_settings_are_checked() -> None:
    from switchboard.settings import PaymentsSettings

    assert [p.credits for p in PaymentsSettings().credit_packs] == [100, 250, 700]
    for name, value in (("PACKS", "a:1"), ("PACKS", "a:1:2,a:3:4"), ("PACKS", "a b:1:2"), ("PACKS", "a:0:5"),
                        ("CREATOR_SHARE_PERCENT", "101")):
        with pytest.raises(SettingsError, match="payments"):
            load_settings(environ={f"SWITCHBOARD_PAYMENTS_{name}": value})


def test_config_command_prints_masked_settings_and_exit_code_on_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql://sb:s3cret@db/sb")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "database_url" in out and "s3cret" not in out and "***" in out
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", "nope")
    assert main(["config"]) == 2
    assert "setting http.port: must be an integer" in capsys.readouterr().err


def test_the_cascade_secret_is_checked_and_never_shown() -> None:
    secret = "the-nodes-shared-pipe-secret-42"
    settings = load_settings(environ={"SWITCHBOARD_CASCADE_SECRET": secret,
                                      "SWITCHBOARD_CASCADE_VIEWERS_PER_NODE": "300"})
    assert settings.cascade.secret == secret and settings.cascade.viewers_per_node == 300
    assert dict(describe(settings))["cascade.secret"] == "'***'"
    assert secret not in repr(settings) and secret not in repr(describe(settings))
    assert dict(describe(load_settings(environ={})))["cascade.secret"] == "''"  # empty: no cascade
    for name, value in (("SECRET", "too-short"), ("VIEWERS_PER_NODE", "-1"), ("PULL_TIMEOUT_S", "0")):
        with pytest.raises(SettingsError, match="cascade"):
            load_settings(environ={f"SWITCHBOARD_CASCADE_{name}": value})
