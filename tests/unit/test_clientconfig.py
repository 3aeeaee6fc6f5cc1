"""clientconfig: client env vars, sort order, key check and macros (dreamcat4-daemon.md §1.3, §1.4, §3, §7)."""

from __future__ import annotations

import shlex

import pytest

from pipeworkd.clientconfig import (
    ClientCommand, ContainerFacts, client_commands, command_variables, expand_macros, key_matches,
    macro_values, parse_env,
)

CID = "0123456789abcdef" * 4
PROJECT = "com.docker.compose.project"


def facts(env=(), name="/web_1", hostname="web", labels=(), id=CID) -> ContainerFacts:
    return ContainerFacts(id=id, name=name, hostname=hostname, env=tuple(env), labels=tuple(labels))


# --- parse_env ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lines, expected", [
    ([], {}),
    (["A=1"], {"A": "1"}),
    (["A=1", "B=2"], {"A": "1", "B": "2"}),
    (["A="], {"A": ""}),
    (["A=b=c"], {"A": "b=c"}),
    (["pipework_cmd=eth0 web 10.0.0.2/24@10.0.0.1 x=y"], {"pipework_cmd": "eth0 web 10.0.0.2/24@10.0.0.1 x=y"}),
    (["NOEQUALS"], {}),
    (["NOEQUALS", "A=1"], {"A": "1"}),
    (["=value"], {}),
    (["A= spaced value "], {"A": " spaced value "}),
    (["PATH=/usr/bin:/bin"], {"PATH": "/usr/bin:/bin"}),
])
def test_parse_env(lines, expected):
    assert parse_env(lines) == expected


# --- command_variables -------------------------------------------------------------------------

def test_sort_order_is_byte_order():
    names = [
        "pipework_cmd_for_eth1", "pipework_cmd_a", "pipework_cmd_B", "c_pipework_cmd", "pipework_cmd1",
        "another_pipework_cmd", "pipework_cmdA", "pipework_cmd", "_pipework_cmd", "c05_pipework_cmd",
        "Z_pipework_cmd", "pipework_cmd_for_eth0", "1_pipework_cmd", "pipework_cmd2", "pipework_cmd10",
    ]
    assert command_variables({name: "x" for name in names}) == [
        "1_pipework_cmd",
        "Z_pipework_cmd",
        "_pipework_cmd",
        "another_pipework_cmd",
        "c05_pipework_cmd",
        "c_pipework_cmd",
        "pipework_cmd",
        "pipework_cmd1",
        "pipework_cmd10",
        "pipework_cmd2",
        "pipework_cmdA",
        "pipework_cmd_B",
        "pipework_cmd_a",
        "pipework_cmd_for_eth0",
        "pipework_cmd_for_eth1",
    ]


@pytest.mark.parametrize("first, second", [
    ("pipework_cmd", "pipework_cmd1"),
    ("pipework_cmd1", "pipework_cmd_a"),
    ("pipework_cmd", "pipework_cmd_a"),
    ("pipework_cmdZ", "pipework_cmd_"),
    ("pipework_cmd_", "pipework_cmda"),
    ("another_pipework_cmd", "pipework_cmd"),
    ("c05_pipework_cmd", "pipework_cmd"),
    ("apache_pipework_cmd", "mysql__pipework_cmd"),
    ("c01_pipework_cmd", "c02_pipework_cmd"),
])
def test_sort_pairs(first, second):
    assert command_variables({second: "x", first: "y"}) == [first, second]


@pytest.mark.parametrize("env, expected", [
    ({"PIPEWORK_CMD": "x"}, []),
    ({"Pipework_Cmd": "x"}, []),
    ({"pipework_command": "x"}, []),
    ({"pipeworkcmd": "x"}, []),
    ({"cmd_for_manual_mode": "x"}, []),
    ({"pipework_key": "x", "pipework_host_route": "1", "pipework_host_routes": "1"}, []),
    ({"OTHER": "pipework_cmd=eth0 web 10.0.0.2/24"}, []),
    ({"FOO": "x pipework_cmd_a=eth0 web 10.0.0.2/24"}, []),
    ({"pipework_cmd_eth1": "a", "PATH": "/bin"}, ["pipework_cmd_eth1"]),
])
def test_names_matched_on_name_only(env, expected):
    assert command_variables(env) == expected


def test_value_containing_pipework_cmd_adds_no_command():
    f = facts(env=["HELP=set pipework_cmd=eth0 web 10.0.0.9/24", "pipework_cmd=br0 web 10.0.0.2/24"])
    assert [c.variable for c in client_commands(f)] == ["pipework_cmd"]


@pytest.mark.parametrize("env, expected", [
    ([], False),
    (["PATH=/bin"], False),
    (["PIPEWORK_CMD=br0 web 0/0"], False),
    (["X=pipework_cmd=br0 web 0/0"], False),
    (["pipework_cmd=br0 web 0/0"], True),
    (["my_pipework_cmd_2=br0 web 0/0"], True),
])
def test_only_names_containing_pipework_cmd_are_commands(env, expected):
    assert bool(command_variables(parse_env(env))) is expected


# --- key_matches -------------------------------------------------------------------------------

@pytest.mark.parametrize("variables, global_key, expected", [
    ({}, None, True),
    ({}, "", True),
    ({"pipework_key": "other"}, None, True),
    ({"pipework_key": "s3cret"}, "s3cret", True),
    ({"pipework_key": "S3cret"}, "s3cret", False),
    ({"pipework_key": "s3cret "}, "s3cret", False),
    ({"pipework_key": " s3cret"}, "s3cret", False),
    ({"pipework_key": "s3cre"}, "s3cret", False),
    ({"pipework_key": ""}, "s3cret", False),
    ({}, "s3cret", False),
    ({"PIPEWORK_KEY": "s3cret"}, "s3cret", False),
    ({"key": "s3cret"}, "s3cret", False),
    ({"pipework_key": "a b"}, "a b", True),
])
def test_key_matches(variables, global_key, expected):
    assert key_matches(variables, global_key) is expected


# --- macro_values ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, instance", [
    ("/prod_myapp_1", "1"),
    ("/web2_12", "12"),
    ("web2_12", "12"),
    ("/proj_web_1_abc3", "3"),
    ("/a1b2c3", "3"),
    ("/app-10-b", "10"),
    ("/x_007", "007"),
    ("x_007", "007"),
    ("/web_01", "01"),
    ("/web", ""),
    ("web", ""),
    ("", ""),
    ("/proj-svc-1", "1"),
    ("k8s_app_pod-7_ns_uid_3", "3"),
])
def test_instance_macro(name, instance):
    assert macro_values(facts(name=name))["@INSTANCE@"] == instance


@pytest.mark.parametrize("name, expected", [
    ("/web", "web"),
    ("web", "web"),
    ("/proj_web_1", "proj_web_1"),
    ("//web", "/web"),
    ("", ""),
])
def test_container_name_macro_strips_one_slash(name, expected):
    assert macro_values(facts(name=name))["@CONTAINER_NAME@"] == expected


@pytest.mark.parametrize("container_id", [CID, CID[:12], "abcdef012345" + "9" * 52])
def test_container_id_macro_is_12_chars(container_id):
    value = macro_values(facts(id=container_id))["@CONTAINER_ID@"]
    assert value == container_id[:12]
    assert len(value) == 12


def test_hostname_macro():
    assert macro_values(facts(hostname="myhost.foo.com"))["@HOSTNAME@"] == "myhost.foo.com"
    assert macro_values(facts(hostname=""))["@HOSTNAME@"] == ""


@pytest.mark.parametrize("labels, expected", [
    ((), ""),
    (((PROJECT, "shop"),), "shop"),
    (((PROJECT, ""),), ""),
    ((("com.docker.compose.service", "web"),), ""),
    ((("other", "x"), (PROJECT, "my proj")), "my proj"),
])
def test_compose_project_macro(labels, expected):
    assert macro_values(facts(labels=labels))["@COMPOSE_PROJECT_NAME@"] == expected


def test_macro_names_exact():
    assert set(macro_values(facts())) == {
        "@CONTAINER_NAME@", "@CONTAINER_ID@", "@HOSTNAME@", "@INSTANCE@", "@COMPOSE_PROJECT_NAME@",
    }


# --- expand_macros -----------------------------------------------------------------------------

def test_expand_inside_words():
    values = macro_values(facts(name="/web_3", hostname="h1", labels=((PROJECT, "shop"),)))
    words = ["10.0.0.@INSTANCE@/24", "U:@HOSTNAME@", "@COMPOSE_PROJECT_NAME@-@CONTAINER_NAME@", "@CONTAINER_ID@"]
    assert expand_macros(words, values) == ("10.0.0.3/24", "U:h1", "shop-web_3", CID[:12])


@pytest.mark.parametrize("word", ["@FOO@", "@instance@", "@INSTANCE", "INSTANCE@", "@@", "@"])
def test_unknown_or_wrong_case_macro_left_alone(word):
    assert expand_macros([word], macro_values(facts())) == (word,)


def test_empty_instance_gives_empty_text():
    values = macro_values(facts(name="/web"))
    assert expand_macros(["192.168.101.@INSTANCE@/24"], values) == ("192.168.101./24",)


# --- client_commands ---------------------------------------------------------------------------

def test_commands_in_sorted_order():
    f = facts(env=[
        "pipework_cmd_b=br0 web 10.0.0.3/24",
        "PATH=/bin",
        "pipework_cmd=br0 web 10.0.0.1/24",
        "another_pipework_cmd=br0 web 10.0.0.0/31",
        "pipework_cmd1=br0 web 10.0.0.2/24",
    ])
    commands = client_commands(f)
    assert [c.variable for c in commands] == ["another_pipework_cmd", "pipework_cmd", "pipework_cmd1", "pipework_cmd_b"]
    assert [c.argv[2] for c in commands] == ["10.0.0.0/31", "10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"]
    assert all(c.error is None for c in commands)


def test_clobbering_bug_not_copied():
    """dreamcat4 ran `another_pipework_cmd` twice and `pipework_cmd` never (§1.4)."""
    f = facts(env=["pipework_cmd=br0 web 10.0.0.1/24", "another_pipework_cmd=br0 web 10.0.0.2/24"])
    assert [c.argv for c in client_commands(f)] == [
        ("br0", "web", "10.0.0.2/24"), ("br0", "web", "10.0.0.1/24")]


@pytest.mark.parametrize("value, argv", [
    ("pipework br0 web 0/0", ("br0", "web", "0/0")),
    ("br0 web 0/0", ("br0", "web", "0/0")),
    ("  pipework   br0  web 0/0 ", ("br0", "web", "0/0")),
    ("'pipework' br0 web 0/0", ("br0", "web", "0/0")),
    ("pipeworkd br0 web 0/0", ("pipeworkd", "br0", "web", "0/0")),
    ("br0 pipework 0/0", ("br0", "pipework", "0/0")),
])
def test_leading_pipework_removed(value, argv):
    (command,) = client_commands(facts(env=[f"pipework_cmd={value}"]))
    assert command.argv == argv
    assert command.raw == value
    assert command.error is None


@pytest.mark.parametrize("value", ["", "   ", "pipework", " pipework "])
def test_empty_command_asks_for_nothing(value):
    assert client_commands(facts(env=[f"pipework_cmd={value}", "pipework_cmd_2=br0 web 0/0"])) == [
        ClientCommand(variable="pipework_cmd_2", raw="br0 web 0/0", argv=("br0", "web", "0/0"))]


def test_macros_expanded():
    f = facts(name="/proj_web_2", hostname="web2.example", labels=((PROJECT, "proj"),), env=[
        "pipework_cmd=br0 -i eth@INSTANCE@ @CONTAINER_NAME@ 10.0.0.@INSTANCE@/24 U:@HOSTNAME@",
        "pipework_cmd_id=br1 @CONTAINER_ID@ 0/0",
        "pipework_cmd_p=br2 @COMPOSE_PROJECT_NAME@_web_@INSTANCE@ 0/0",
    ])
    assert [c.argv for c in client_commands(f)] == [
        ("br0", "-i", "eth2", "proj_web_2", "10.0.0.2/24", "U:web2.example"),
        ("br1", CID[:12], "0/0"),
        ("br2", "proj_web_2", "0/0"),
    ]


@pytest.mark.parametrize("label", [
    "a b; rm -rf /",
    "a b",
    "x' y",
    'x" y',
    "$(touch /tmp/pwt-never)",
    "`id`",
    "a\nb",
    "a|b&c\\d",
    "  ",
    "",
])
def test_macro_value_never_adds_words(label):
    f = facts(labels=((PROJECT, label),), env=["pipework_cmd=br0 web 0/0 U:@COMPOSE_PROJECT_NAME@"])
    (command,) = client_commands(f)
    assert command.error is None
    assert command.argv == ("br0", "web", "0/0", "U:" + label)


def test_macro_inside_quoted_word():
    f = facts(name="/web_5", env=["pipework_cmd=eth0 web 'dhclient:-H host@INSTANCE@ -v'"])
    (command,) = client_commands(f)
    assert command.argv == ("eth0", "web", "dhclient:-H host5 -v")


def test_macro_in_name_of_variable_not_expanded():
    f = facts(name="/web_5", env=["pipework_cmd_@INSTANCE@=br0 web 0/0"])
    (command,) = client_commands(f)
    assert command.variable == "pipework_cmd_@INSTANCE@"


def test_values_are_not_evaluated(tmp_path):
    marker = tmp_path / "x"
    f = facts(env=[
        f"pipework_cmd=br0 $(touch {marker}) 0/0",
        f"pipework_cmd2=br0 `touch {marker}` 0/0",
        "pipework_cmd3=br0 $HOME ~ * 0/0",
    ])
    commands = client_commands(f)
    assert commands[0].argv == ("br0", "$(touch", f"{marker})", "0/0")
    assert commands[1].argv == ("br0", "`touch", f"{marker}`", "0/0")
    assert commands[2].argv == ("br0", "$HOME", "~", "*", "0/0")
    assert not marker.exists()


def test_whitespace_inside_quotes_kept():
    (command,) = client_commands(facts(env=["pipework_cmd=eth0 web 'dhclient:-H  a   b'"]))
    assert command.argv == ("eth0", "web", "dhclient:-H  a   b")


@pytest.mark.parametrize("bad", ["br0 web '10.0.0.2/24", 'br0 web "10.0.0.2/24', "br0 web 0/0 \\"])
def test_unbalanced_quote_is_isolated(bad):
    f = facts(env=[
        "pipework_cmd=br0 web 10.0.0.1/24",
        f"pipework_cmd1={bad}",
        "pipework_cmd2=br0 web 10.0.0.3/24",
    ])
    commands = client_commands(f)
    assert [c.variable for c in commands] == ["pipework_cmd", "pipework_cmd1", "pipework_cmd2"]
    good1, broken, good2 = commands
    assert good1 == ClientCommand("pipework_cmd", "br0 web 10.0.0.1/24", ("br0", "web", "10.0.0.1/24"))
    assert good2 == ClientCommand("pipework_cmd2", "br0 web 10.0.0.3/24", ("br0", "web", "10.0.0.3/24"))
    assert broken.argv == ()
    assert broken.raw == bad
    assert broken.error
    assert "pipework_cmd1" in broken.error
    assert "\n" not in broken.error


def test_argv_round_trips_through_shlex():
    (command,) = client_commands(facts(env=["pipework_cmd=eth0 web 'dhclient:-H \"a b\"'"]))
    assert shlex.split(shlex.join(command.argv)) == list(command.argv)


def test_no_commands():
    assert client_commands(facts(env=["PATH=/bin", "PIPEWORK_CMD=x"])) == []
