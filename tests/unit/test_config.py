"""config: run modes, global settings, flags (dreamcat4-daemon.md §1.2, §2.1, §7) and daemon.matches_filters."""

from __future__ import annotations

import pytest

from pipeworkd.config import (
    Settings, parse_event_filters, parse_flag, parse_run_modes, parse_seconds, read_globals, settings_from_env,
)
from pipeworkd.daemon import matches_filters
from pipeworkd.docker_adapter import ContainerInfo
from pipeworkd.errors import ConfigError

M, B, D = "manual", "batch", "daemon"


# --- parse_run_modes ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, modes", [
    ("", (M,)),
    (" ", (M,)),
    (",", (M,)),
    (" , ,", (M,)),
    ("manual", (M,)),
    ("batch", (B,)),
    ("daemon", (D,)),
    ("both", (B, D)),
    ("all", (M, B, D)),
    ("daemon,batch", (B, D)),
    ("daemon,manual", (M, D)),
    ("daemon,batch,manual", (M, B, D)),
    ("batch,batch", (B,)),
    ("daemon,daemon,daemon", (D,)),
    ("both,batch", (B, D)),
    ("both,manual", (M, B, D)),
    ("all,daemon", (M, B, D)),
    ("all,both", (M, B, D)),
    ("Batch,daemon", (B, D)),
    ("BATCH", (B,)),
    ("Both", (B, D)),
    ("ALL", (M, B, D)),
    (" batch , daemon ", (B, D)),
    ("batch,", (B,)),
    (",daemon", (D,)),
])
def test_parse_run_modes(text, modes):
    assert parse_run_modes(text) == modes


def assert_one_line_naming(error: Exception, culprit: str) -> None:
    message = str(error)
    assert f"'{culprit}'" in message
    assert "\n" not in message


@pytest.mark.parametrize("text, culprit", [
    ("bogus", "bogus"),
    ("man", "man"),
    ("batch,nope", "nope"),
    ("man,batch", "man"),
    ("manual batch", "manual batch"),
    ("batch;daemon", "batch;daemon"),
    ("deamon", "deamon"),
])
def test_parse_run_modes_unknown_word(text, culprit):
    with pytest.raises(ConfigError) as info:
        parse_run_modes(text)
    assert_one_line_naming(info.value, culprit)


# --- parse_flag --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["", " ", "false", "False", "FALSE", "0", "no", "No", "off", "OFF", " false ", "\toff\n"])
def test_flag_off(value):
    assert parse_flag(value) is False


@pytest.mark.parametrize("value", ["true", "True", "yes", "1", "on", "y", "anything", "00", "-1", "enable", "nope"])
def test_flag_on(value):
    assert parse_flag(value) is True


# --- parse_seconds -----------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("0", 0.0),
    ("3", 3.0),
    ("1.5", 1.5),
    (" 2 ", 2.0),
    ("3s", 3.0),
    ("3S", 3.0),
    ("1m", 60.0),
    ("1.5m", 90.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    (".5", 0.5),
    ("0s", 0.0),
])
def test_parse_seconds(value, seconds):
    assert parse_seconds("sleep", value) == seconds


@pytest.mark.parametrize("value", ["", "-1", "-0.5", "-1m", "abc", "s", "m", "1x", "1 minute", "nan", "inf", "infs",
                                   "1e999", "--1", "1,5"])
def test_parse_seconds_rejects(value):
    with pytest.raises(ConfigError) as info:
        parse_seconds("retry_delay", value)
    message = str(info.value)
    assert "retry_delay" in message
    assert "\n" not in message


# --- parse_event_filters -----------------------------------------------------------------------

@pytest.mark.parametrize("value, filters", [
    ("", {}),
    (",", {}),
    ("image=redis", {"image": ["redis"]}),
    ("image=redis,container=myapp", {"image": ["redis"], "container": ["myapp"]}),
    ("image=redis,image=nginx:1.25", {"image": ["redis", "nginx:1.25"]}),
    (" container=a , container=b ", {"container": ["a", "b"]}),
    ("label=com.example.role", {"label": ["com.example.role"]}),
    ("label=com.example.role=web", {"label": ["com.example.role=web"]}),
    ("image=busybox,container=a_container", {"image": ["busybox"], "container": ["a_container"]}),
    ("image=redis,", {"image": ["redis"]}),
])
def test_parse_event_filters(value, filters):
    assert parse_event_filters(value) == filters


@pytest.mark.parametrize("value, culprit", [
    ("redis", "redis"),
    ("image", "image"),
    ("=redis", "=redis"),
    ("image=", "image="),
    ("event=start", "event=start"),
    ("type=container", "type=container"),
    ("name=web", "name=web"),
    ("Image=redis", "Image=redis"),
    ("image=redis,bogus", "bogus"),
])
def test_parse_event_filters_errors(value, culprit):
    with pytest.raises(ConfigError) as info:
        parse_event_filters(value)
    assert_one_line_naming(info.value, culprit)


# --- read_globals and settings_from_env --------------------------------------------------------

@pytest.mark.parametrize("environ, expected", [
    ({}, {}),
    ({"key": "a"}, {"key": "a"}),
    ({"pipework_key": "b"}, {"key": "b"}),
    ({"key": "a", "pipework_key": "b"}, {"key": "a"}),
    ({"key": "", "pipework_key": "b"}, {"key": "b"}),
    ({"key": "", "pipework_key": ""}, {}),
    ({"key": "a", "pipework_key": ""}, {"key": "a"}),
    ({"KEY": "a", "PIPEWORK_KEY": "b"}, {}),
    ({"pipework_cmd": "x", "cmd": "y"}, {}),
    ({"run_mode": "batch", "pipework_sleep": "1"}, {"run_mode": "batch", "sleep": "1"}),
])
def test_read_globals(environ, expected):
    assert read_globals(environ) == expected


def test_defaults():
    settings = settings_from_env({})
    assert settings == Settings()
    assert settings.run_modes == (M,)
    assert settings.key is None
    assert settings.debug is False
    assert settings.sleep == 0.0
    assert settings.event_filters == {}
    assert settings.retry_delay == 0.0
    assert settings.inter_delay == 0.0
    assert settings.up_time is None
    assert settings.warnings == ()


@pytest.mark.parametrize("environ, modes", [
    ({"run_mode": "batch"}, (B,)),
    ({"pipework_run_mode": "daemon"}, (D,)),
    ({"run_mode": "both", "pipework_run_mode": "manual"}, (B, D)),
    ({"run_mode": "", "pipework_run_mode": "all"}, (M, B, D)),
    ({"run_mode": ""}, (M,)),
])
def test_run_mode_from_env(environ, modes):
    assert settings_from_env(environ).run_modes == modes


def test_run_mode_argument_overrides_env():
    assert settings_from_env({"run_mode": "daemon"}, run_mode="batch").run_modes == (B,)
    assert settings_from_env({"run_mode": "daemon"}, run_mode="").run_modes == (M,)


def test_unknown_run_mode_in_env():
    with pytest.raises(ConfigError, match="'bogus'"):
        settings_from_env({"run_mode": "bogus"})


@pytest.mark.parametrize("environ, key", [
    ({"key": "s3cret"}, "s3cret"),
    ({"pipework_key": "s3cret"}, "s3cret"),
    ({"key": "a", "pipework_key": "b"}, "a"),
    ({"key": ""}, None),
    ({"key": "a   b"}, "a   b"),
])
def test_key(environ, key):
    assert settings_from_env(environ).key == key


@pytest.mark.parametrize("value, debug", [("1", True), ("true", True), ("false", False), ("0", False), ("", False)])
def test_debug_flag(value, debug):
    assert settings_from_env({"debug": value}).debug is debug
    assert settings_from_env({"pipework_debug": value}).debug is debug


@pytest.mark.parametrize("name", ["sleep", "retry_delay", "inter_delay"])
@pytest.mark.parametrize("value, seconds", [("5", 5.0), ("1.5", 1.5), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0)])
def test_durations(name, value, seconds):
    assert getattr(settings_from_env({name: value}), name) == seconds
    assert getattr(settings_from_env({f"pipework_{name}": value}), name) == seconds


@pytest.mark.parametrize("name", ["sleep", "retry_delay", "inter_delay", "up_time"])
@pytest.mark.parametrize("value", ["-1", "-2m", "abc", "5 minutes", "nan"])
def test_bad_durations(name, value):
    with pytest.raises(ConfigError) as info:
        settings_from_env({name: value})
    message = str(info.value)
    assert name in message
    assert value in message
    assert "\n" not in message


def test_bare_duration_wins():
    settings = settings_from_env({"retry_delay": "2", "pipework_retry_delay": "9"})
    assert settings.retry_delay == 2.0


def test_empty_bare_duration_falls_back_to_prefixed():
    assert settings_from_env({"inter_delay": "", "pipework_inter_delay": "3"}).inter_delay == 3.0


def test_up_time():
    assert settings_from_env({"up_time": "30"}).up_time == 30.0
    assert settings_from_env({"pipework_up_time": "1m"}).up_time == 60.0
    assert settings_from_env({"up_time": ""}).up_time is None


def test_event_filters_from_env():
    settings = settings_from_env({"event_filters": "image=redis,container=web,image=nginx"})
    assert settings.event_filters == {"image": ["redis", "nginx"], "container": ["web"]}
    assert settings_from_env({"pipework_event_filters": "label=x"}).event_filters == {"label": ["x"]}


@pytest.mark.parametrize("value", ["redis", "image=", "foo=bar"])
def test_event_filters_errors_from_env(value):
    with pytest.raises(ConfigError) as info:
        settings_from_env({"event_filters": value})
    assert "event_filters" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["host_routes", "host_route_arping", "host_route_protocols", "route_add_delay"])
@pytest.mark.parametrize("prefix", ["", "pipework_"])
def test_warnings_for_unsupported(name, prefix):
    settings = settings_from_env({prefix + name: "true"})
    assert len(settings.warnings) == 1
    (warning,) = settings.warnings
    assert warning.startswith(name + " ")
    assert "not supported yet" in warning
    assert "\n" not in warning


def test_host_routes_warns_even_if_false():
    assert any("host_routes" in w for w in settings_from_env({"host_routes": "false"}).warnings)


def test_no_warning_for_empty_host_routes():
    assert settings_from_env({"host_routes": "", "pipework_host_routes": ""}).warnings == ()


def test_cleanup_wait_warns():
    (warning,) = settings_from_env({"cleanup_wait": "22"}).warnings
    assert "cleanup_wait" in warning


def test_several_warnings():
    settings = settings_from_env({"host_routes": "1", "pipework_route_add_delay": "2", "cleanup_wait": "1"})
    assert len(settings.warnings) == 3


def test_unrelated_env_ignored():
    environ = {"WAIT": "1", "DIRECT_PHYS": "1", "GATEWAY": "10.0.0.1", "pipework_cmd": "br0 web 0/0", "cmd": "x"}
    assert settings_from_env(environ) == Settings()


# --- daemon.matches_filters --------------------------------------------------------------------

WEB_ID = "4f66ad9a0b2e" + "3" * 52


def info(image="redis:7", name="web", id=WEB_ID, labels=()) -> ContainerInfo:
    return ContainerInfo(id=id, name=name, pid=1234, running=True, started_at="2024-01-01T00:00:00Z",
                         hostname=id[:12], image=image, env=(), labels=tuple(labels))


LABELS = (("com.example.role", "web"), ("com.example.tier", "front"), ("empty", ""))


@pytest.mark.parametrize("image, wanted, expected", [
    ("redis:7", "redis", True),
    ("redis:7", "redis:7", True),
    ("redis:7", "redis:6", False),
    ("redis:7", "redi", False),
    ("redis:7", "nginx", False),
    ("redis", "redis", True),
    ("redis", "redis:7", False),
    ("library/redis:7", "library/redis", True),
    ("ghcr.io/acme/app:1.0", "ghcr.io/acme/app", True),
    ("ghcr.io/acme/app:1.0", "ghcr.io/acme/app:1.0", True),
    ("ghcr.io/acme/app:1.0", "app", False),
])
def test_filter_image(image, wanted, expected):
    assert matches_filters(info(image=image), {"image": [wanted]}) is expected


@pytest.mark.parametrize("image, wanted, expected", [
    ("localhost:5000/redis:7", "localhost:5000/redis", True),
    ("localhost:5000/redis:7", "localhost", False),
    ("redis@sha256:" + "a" * 64, "redis", True),
])
def test_filter_image_with_registry_port_or_digest(image, wanted, expected):
    assert matches_filters(info(image=image), {"image": [wanted]}) is expected


@pytest.mark.parametrize("wanted, expected", [
    ("web", True),
    (WEB_ID, True),
    (WEB_ID[:12], True),
    (WEB_ID[:4], True),
    ("other", False),
    ("we", False),
    ("web_1", False),
    ("3333", False),
])
def test_filter_container(wanted, expected):
    assert matches_filters(info(), {"container": [wanted]}) is expected


@pytest.mark.parametrize("wanted, expected", [
    ("com.example.role", True),
    ("com.example.role=web", True),
    ("com.example.role=db", False),
    ("com.example.role=", False),
    ("empty", True),
    ("empty=", True),
    ("com.example", False),
    ("missing", False),
    ("missing=web", False),
])
def test_filter_label(wanted, expected):
    assert matches_filters(info(labels=LABELS), {"label": [wanted]}) is expected


def test_label_value_with_equals():
    assert matches_filters(info(labels=(("k", "a=b"),)), {"label": ["k=a=b"]}) is True
    assert matches_filters(info(labels=(("k", "a=b"),)), {"label": ["k=a"]}) is False


def test_label_filter_without_labels():
    assert matches_filters(info(labels=()), {"label": ["com.example.role"]}) is False


@pytest.mark.parametrize("filters, expected", [
    ({}, True),
    ({"image": ["redis"], "container": ["web"]}, True),
    ({"image": ["redis"], "container": ["other"]}, False),
    ({"image": ["nginx"], "container": ["web"]}, False),
    ({"image": ["redis"], "container": ["web"], "label": ["com.example.role=web"]}, True),
    ({"image": ["redis"], "container": ["web"], "label": ["com.example.role=db"]}, False),
    ({"container": ["other", "web"]}, True),
    ({"container": ["other", "another"]}, False),
    ({"image": ["nginx", "redis"]}, True),
    ({"image": ["nginx", "redis"], "container": ["x", WEB_ID[:12]]}, True),
    ({"image": ["busybox"], "container": ["web"]}, False),
])
def test_filters_keys_anded_values_ored(filters, expected):
    assert matches_filters(info(labels=LABELS), filters) is expected


def test_repeated_label_filters_anded_like_docker():
    assert matches_filters(info(labels=(("a", "1"),)), {"label": ["a", "b"]}) is False


def test_empty_filters_match_everything():
    assert matches_filters(info(image="", name="", labels=()), {}) is True


def test_from_inspect_feeds_filters():
    data = {
        "Id": WEB_ID, "Name": "/web",
        "State": {"Pid": 42, "Running": True, "StartedAt": "t"},
        "Config": {"Hostname": "h", "Image": "redis:7", "Env": ["A=1"], "Labels": {"com.example.role": "web"}},
        "HostConfig": {"NetworkMode": "bridge"},
    }
    parsed = ContainerInfo.from_inspect(data)
    assert parsed.name == "web"
    assert matches_filters(parsed, {"container": ["web"], "image": ["redis"], "label": ["com.example.role=web"]})


@pytest.mark.parametrize("value, expected", [("1", 1), ("4", 4), ("64", 64)])
def test_workers(value, expected):
    assert settings_from_env({"PIPEWORKD_WORKERS": value}).workers == expected


@pytest.mark.parametrize("value", ["0", "65", "2m", "abc", "1.5", "-1", "²"])
def test_bad_workers(value):
    with pytest.raises(ConfigError, match="PIPEWORKD_WORKERS=.*whole number from 1 to 64"):
        settings_from_env({"PIPEWORKD_WORKERS": value})


@pytest.mark.parametrize("name", ["sleep", "retry_delay", "inter_delay", "up_time"])
@pytest.mark.parametrize("value", ["1e300", "inf", "nan", "367d"])
def test_seconds_are_bounded(name, value):
    with pytest.raises(ConfigError, match=f"{name}=.*from 0 to"):
        settings_from_env({name: value})


@pytest.mark.parametrize("value, expected", [("0", None), ("", None), ("2m", 120.0)])
def test_up_time_zero_means_no_limit(value, expected):
    assert settings_from_env({"up_time": value}).up_time == expected


@pytest.mark.parametrize("value", ["٣", "１"])
def test_seconds_are_ascii(value):
    with pytest.raises(ConfigError, match="expected a number of seconds"):
        settings_from_env({"retry_delay": value})


@pytest.mark.parametrize("value, expected", [("", 30.0), ("0.5", 0.5), ("2m", 120.0)])
def test_housekeeping_interval(value, expected):
    assert settings_from_env({"PIPEWORKD_HOUSEKEEPING_INTERVAL": value}).housekeeping_interval == expected


@pytest.mark.parametrize("value", ["0", "1e-9", "0.05"])
def test_housekeeping_interval_has_a_floor(value):
    with pytest.raises(ConfigError, match="at least 0.1 seconds"):
        settings_from_env({"PIPEWORKD_HOUSEKEEPING_INTERVAL": value})
