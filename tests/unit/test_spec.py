"""spec.parse and spec.refuse_unsupported: the pipework grammar (pipework-cli.md §1, §2.4, §2.7)."""

from __future__ import annotations

import ipaddress
import shlex

import pytest

from pipeworkd import spec
from pipeworkd.errors import NotSupportedError, SpecError
from pipeworkd.spec import AttachSpec, DhcpSpec, PassthroughSpec, WaitSpec, parse, refuse_unsupported

IP4 = ipaddress.ip_interface
ADDR = ipaddress.ip_address


# --- attach: options and positionals ------------------------------------------------------------

@pytest.mark.parametrize("command", [
    "eth0 -i eth2 -l vhost0 -a 4 web 10.0.0.2/24",
    "eth0 -a 4 -l vhost0 -i eth2 web 10.0.0.2/24",
    "-l vhost0 eth0 web -i eth2 10.0.0.2/24 -a 4",
    "eth0 web 10.0.0.2/24 -a 4 -i eth2 -l vhost0",
    "-i eth2 -l vhost0 -a 4 eth0 web 10.0.0.2/24",
])
def test_options_in_any_order(command):
    result = parse(command)
    assert result == AttachSpec(
        host_if="eth0", guest="web", container_ifname="eth2", host_ifname="vhost0",
        family=4, address=IP4("10.0.0.2/24"))


def test_defaults():
    result = parse("br0 web 10.0.0.2/24")
    assert isinstance(result, AttachSpec)
    assert result.host_if == "br0"
    assert result.guest == "web"
    assert result.container_ifname == "eth1"
    assert result.host_ifname is None
    assert result.host_mac is None
    assert result.family is None
    assert result.gateway is None
    assert result.dhcp is None
    assert result.mac is None
    assert result.vlan is None
    assert result.direct_phys is False


@pytest.mark.parametrize("command", [
    "eth0 web 10.0.0.2/24",
    "pipework eth0 web 10.0.0.2/24",
])
def test_leading_pipework_word_dropped(command):
    result = parse(command)
    assert result.host_if == "eth0"
    assert result.argv == ("eth0", "web", "10.0.0.2/24")


def test_leading_pipework_dropped_from_argv_list():
    assert parse(["pipework", "eth0", "web", "10.0.0.2/24"]).host_if == "eth0"


def test_argv_list_is_not_split_again():
    result = parse(["eth0", "web", "dhclient:-H my host"])
    assert result.dhcp == DhcpSpec("dhclient", ("-H", "my", "host"))
    assert result.argv == ("eth0", "web", "dhclient:-H my host")


@pytest.mark.parametrize("command", [
    "--direct-phys eth0 web 10.0.0.2/24",
    "eth0 --direct-phys web 10.0.0.2/24",
    "eth0 web 10.0.0.2/24 --direct-phys",
])
def test_direct_phys_anywhere(command):
    assert parse(command).direct_phys is True


def test_guest_leading_slash_removed():
    assert parse("br0 /web 10.0.0.2/24").guest == "web"


@pytest.mark.parametrize("guest", ["web", "web_1", "proj-web-1", "a.b", "0123456789ab", "f" * 64])
def test_valid_container_refs(guest):
    assert parse(f"br0 {guest} 0/0").guest == guest


def test_command_property_is_shell_quoted():
    result = parse(["eth0", "web", "dhclient:-H my host"])
    assert shlex.split(result.command) == ["eth0", "web", "dhclient:-H my host"]


# --- host interface ----------------------------------------------------------------------------

@pytest.mark.parametrize("word, mac", [
    ("mac:02:42:ac:11:00:02", "02:42:ac:11:00:02"),
    ("mac:AA:BB:CC:DD:EE:FE", "aa:bb:cc:dd:ee:fe"),
    ("MAC:02:42:ac:11:00:02", "02:42:ac:11:00:02"),
])
def test_host_mac_form(word, mac):
    result = parse(f"{word} web 10.0.0.2/24")
    assert result.host_if == ""
    assert result.host_mac == mac


@pytest.mark.parametrize("host_if", ["eth0", "br0", "ovsbr0", "dummy0", "eth0.100", "enp3s0f1", "a" * 15])
def test_host_ifnames(host_if):
    assert parse(f"{host_if} web 0/0").host_if == host_if


# --- IPSPEC ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ipspec, address, gateway", [
    ("10.0.0.2/24", "10.0.0.2/24", None),
    ("10.0.0.2/24@10.0.0.1", "10.0.0.2/24", "10.0.0.1"),
    ("10.0.0.2/24@192.168.1.1", "10.0.0.2/24", "192.168.1.1"),
    ("10.0.0.2/24@10.0.0.1@junk", "10.0.0.2/24", "10.0.0.1"),
    ("192.168.1.10/32", "192.168.1.10/32", None),
    ("10.0.0.0/31", "10.0.0.0/31", None),
    ("10.0.0.1/8", "10.0.0.1/8", None),
    ("2001:db8::2/64", "2001:db8::2/64", None),
    ("2001:db8::2/64@2001:db8::1", "2001:db8::2/64", "2001:db8::1"),
    ("2001:db8::2/64@fe80::1", "2001:db8::2/64", "fe80::1"),
])
def test_static_addresses(ipspec, address, gateway):
    result = parse(f"eth0 web {ipspec}")
    assert result.address == IP4(address)
    assert result.gateway == (ADDR(gateway) if gateway else None)
    assert result.dhcp is None


def test_ipv6_with_family_6():
    result = parse("-a 6 eth0 web 2001:db8::2/64@2001:db8::1")
    assert result.family == 6
    assert result.address == IP4("2001:db8::2/64")
    assert result.gateway == ADDR("2001:db8::1")


def test_zero_slash_zero_means_no_address():
    result = parse("br0 web 0/0")
    assert result.address is None
    assert result.gateway is None
    assert result.dhcp is None


@pytest.mark.parametrize("method", spec.DHCP_METHODS)
def test_dhcp_method_without_options(method):
    assert parse(f"eth0 web {method}").dhcp == DhcpSpec(method=method, options=())


@pytest.mark.parametrize("method", spec.DHCP_METHODS)
def test_dhcp_method_with_empty_options(method):
    assert parse(f"eth0 web {method}:").dhcp == DhcpSpec(method=method, options=())


@pytest.mark.parametrize("method", spec.DHCP_METHODS)
def test_dhcp_method_with_options(method):
    assert parse(f"eth0 web {method}:-v").dhcp == DhcpSpec(method=method, options=("-v",))


@pytest.mark.parametrize("command, options", [
    ('eth0 web dhclient:"-H name"', ("-H", "name")),
    ("eth0 web 'dhclient:-H \"my host\" -v'", ("-H", "my host", "-v")),
    ("eth0 web \"udhcpc:-x hostname:'a b'\"", ("-x", "hostname:a b")),
    ("eth0 web 'dhcpcd:--timeout 5'", ("--timeout", "5")),
    ("eth0 web 'dhcp:-x opt:1'", ("-x", "opt:1")),
    ("eth0 web 'dhclient-f:$(touch x) `id` *'", ("$(touch", "x)", "`id`", "*")),
])
def test_dhcp_options_split_with_shell_quoting(command, options):
    assert parse(command).dhcp.options == options


def test_dhcp_does_not_set_address():
    result = parse("eth0 web dhcp")
    assert result.address is None
    assert result.gateway is None


# --- MACSPEC -----------------------------------------------------------------------------------

@pytest.mark.parametrize("macspec, mac, vlan", [
    ("02:42:ac:11:00:02", "02:42:ac:11:00:02", None),
    ("02:42:AC:11:00:0F", "02:42:ac:11:00:0f", None),
    ("U:myhost.foo.com", "02:72:6c:cd:9b:8d", None),
    ("@10", None, 10),
    ("@1", None, 1),
    ("@4094", None, 4094),
    ("02:42:ac:11:00:02@100", "02:42:ac:11:00:02", 100),
    ("U:myhost.foo.com@7", "02:72:6c:cd:9b:8d", 7),
    ("@10@junk", None, 10),
])
def test_macspec_forms(macspec, mac, vlan):
    result = parse(f"eth0 web 10.0.0.2/24 {macspec}")
    assert result.mac == mac
    assert result.vlan == vlan


def test_u_mac_known_vector():
    assert spec.mac_from_string("myhost.foo.com") == "02:72:6c:cd:9b:8d"


@pytest.mark.parametrize("text", ["", "a", "myhost.foo.com", "a b", "$(touch x)", "x" * 200])
def test_u_mac_is_locally_administered_unicast(text):
    mac = spec.mac_from_string(text)
    assert spec.validate_mac(mac, "MAC") == mac
    assert mac.startswith("02:")


def test_u_mac_differs_per_string():
    assert spec.mac_from_string("a") != spec.mac_from_string("b")


# --- passthrough and --wait ----------------------------------------------------------------------

@pytest.mark.parametrize("command, kind, guest, args", [
    ("route web add default via 10.0.0.1", "route", "web", ("add", "default", "via", "10.0.0.1")),
    ("rule web add from 10.0.0.2 table 100", "rule", "web", ("add", "from", "10.0.0.2", "table", "100")),
    ("tc web qdisc add dev eth1 root netem delay 10ms", "tc", "web",
     ("qdisc", "add", "dev", "eth1", "root", "netem", "delay", "10ms")),
    ("pipework route web show", "route", "web", ("show",)),
    ("route /web -6 show", "route", "web", ("-6", "show")),
])
def test_passthrough(command, kind, guest, args):
    assert parse(command) == PassthroughSpec(kind=kind, guest=guest, args=args)


@pytest.mark.parametrize("command", ["route", "route web", "rule web", "tc web"])
def test_passthrough_needs_container_and_args(command):
    with pytest.raises(SpecError) as info:
        parse(command)
    assert "\n" not in str(info.value)


def test_passthrough_rejects_bad_container():
    with pytest.raises(SpecError, match="container"):
        parse("route '$(id)' show")


@pytest.mark.parametrize("command, cif", [
    ("--wait", "eth1"),
    ("--wait -i eth2", "eth2"),
    ("-i eth3 --wait", "eth3"),
    ("pipework --wait", "eth1"),
])
def test_wait(command, cif):
    assert parse(command) == WaitSpec(container_ifname=cif)


def test_wait_takes_no_positional():
    with pytest.raises(SpecError, match="eth9"):
        parse("--wait eth9")


@pytest.mark.parametrize("cif", ["a/b", "eth:1", "x" * 16])
def test_wait_validates_ifname(cif):
    with pytest.raises(SpecError):
        parse(["--wait", "-i", cif])


# --- quoting: shlex, nothing evaluated -----------------------------------------------------------

def test_quoted_words_kept_together():
    result = parse("eth0 -i 'eth2' \"web\" '10.0.0.2/24'")
    assert (result.container_ifname, result.guest) == ("eth2", "web")


@pytest.mark.parametrize("text", ["$HOME", "~", "e*", "e?", "$((1))"])
def test_no_expansion_in_ifname(text):
    assert parse(["eth0", "-i", text, "web", "0/0"]).container_ifname == text


@pytest.mark.parametrize("guest", ["$(touch {f})", "`touch {f}`", "web;touch {f}", "web&&touch {f}", "$HOME"])
def test_command_substitution_never_runs(tmp_path, guest):
    marker = tmp_path / "x"
    command = "eth0 " + shlex.quote(guest.format(f=marker)) + " 10.0.0.2/24"
    with pytest.raises(SpecError, match="container"):
        parse(command)
    assert not marker.exists()


@pytest.mark.parametrize("template", [
    "eth0 web 10.0.0.2/24 'U:$(touch {f})'",
    "eth0 web 10.0.0.2/24 'U:`touch {f}`'",
    "eth0 web 'dhclient:$(touch {f})'",
    "eth0 web 'dhclient:`touch {f}`'",
    "eth0 web $(touch {f})",
    "eth0 web `touch {f}`",
    "eth0 -i '$(touch {f})' web 0/0",
])
def test_nothing_is_evaluated(tmp_path, template):
    marker = tmp_path / "x"
    try:
        parse(template.format(f=marker))
    except SpecError:
        pass
    assert not marker.exists()


def test_u_mac_hashes_literal_text():
    result = parse("eth0 web 10.0.0.2/24 'U:$(hostname)'")
    assert result.mac == spec.mac_from_string("$(hostname)")


def test_hash_is_not_a_comment():
    with pytest.raises(SpecError, match="#x"):
        parse("eth0 web 10.0.0.2/24 #x")


# --- errors ------------------------------------------------------------------------------------

ERRORS = [
    # (command, text the message must contain)
    ("eth0 web 10.0.0.5", "/24"),
    ("eth0 web 10.0.0.5@10.0.0.1", "10.0.0.5/24"),
    ("eth0 web fe80::5", "fe80::5"),
    ("eth0 web nonsense", "nonsense"),
    ("eth0 web 10.0.0.2/33", "10.0.0.2/33"),
    ("eth0 web 2001:db8::2/129", "2001:db8::2/129"),
    ("eth0 web 300.0.0.2/24", "300.0.0.2/24"),
    ("eth0 web 10.0.0.0/24", "10.0.0.0/24"),
    ("eth0 web 10.0.0.0/8", "network address"),
    ("eth0 web 2001:db8::/64", "2001:db8::/64"),
    ("eth0 web 10.0.0.2/24@fe80::1", "fe80::1"),
    ("eth0 web 2001:db8::2/64@10.0.0.1", "10.0.0.1"),
    ("eth0 web 10.0.0.2/24@10.0.0.2", "10.0.0.2"),
    ("eth0 web 10.0.0.2/24@", "@"),
    ("eth0 web 10.0.0.2/24@gateway", "gateway"),
    ("eth0 web 10.0.0.2/24@10.0.0.1/24", "10.0.0.1/24"),
    ("eth0 web 10.0.0.2/24 02:42:ac:11:00", "02:42:ac:11:00"),
    ("eth0 web 10.0.0.2/24 02:42:ac:11:00:zz", "02:42:ac:11:00:zz"),
    ("eth0 web 10.0.0.2/24 0242ac110002", "0242ac110002"),
    ("eth0 web 10.0.0.2/24 02-42-ac-11-00-02", "02-42-ac-11-00-02"),
    ("eth0 web 10.0.0.2/24 01:00:5e:00:00:01", "01:00:5e:00:00:01"),
    ("eth0 web 10.0.0.2/24 ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff"),
    ("eth0 web 10.0.0.2/24 03:00:00:00:00:01", "multicast"),
    ("eth0 web 10.0.0.2/24 00:00:00:00:00:00", "00:00:00:00:00:00"),
    ("mac:01:00:5e:00:00:01 web 10.0.0.2/24", "01:00:5e:00:00:01"),
    ("mac:00:00:00:00:00:00 web 10.0.0.2/24", "all-zero"),
    ("mac:xyz web 10.0.0.2/24", "xyz"),
    ("eth0 web 10.0.0.2/24 @0", "'0'"),
    ("eth0 web 10.0.0.2/24 @4095", "4095"),
    ("eth0 web 10.0.0.2/24 @abc", "abc"),
    ("eth0 web 10.0.0.2/24 @-1", "-1"),
    ("eth0 web 10.0.0.2/24 @", "VLAN"),
    ("eth0 web 10.0.0.2/24 02:42:ac:11:00:02@x", "'x'"),
    ("-a 5 eth0 web 10.0.0.2/24", "-a 5"),
    ("-a inet6 eth0 web 10.0.0.2/24", "inet6"),
    ("-a 6 eth0 web 10.0.0.2/24", "10.0.0.2/24"),
    ("-a 4 eth0 web 2001:db8::2/64", "2001:db8::2/64"),
    ("-x eth0 web 10.0.0.2/24", "-x"),
    ("eth0 web 10.0.0.2/24 --vlan", "--vlan"),
    ("eth0 -i eth2 -i eth3 web 10.0.0.2/24", "-i"),
    ("eth0 -l a -l b web 10.0.0.2/24", "-l"),
    ("eth0 -a 4 -a 4 web 10.0.0.2/24", "-a"),
    ("eth0 web 10.0.0.2/24 -i", "-i"),
    ("eth0 web 10.0.0.2/24 -l", "-l"),
    ("eth0 web 10.0.0.2/24 -a", "-a"),
    ("eth0 -i '' web 10.0.0.2/24", "-i"),
    ("eth0 web 10.0.0.2/24 02:42:ac:11:00:02 extra", "extra"),
    ("eth0", "container"),
    ("eth0 web", "IP address"),
    ("-i eth2", "host interface"),
    ("eth0 -i abcdefghijklmnop web 10.0.0.2/24", "abcdefghijklmnop"),
    ("eth0 -i a/b web 10.0.0.2/24", "a/b"),
    ("eth0 -i a:b web 10.0.0.2/24", "a:b"),
    ("eth0 -i 'a b' web 10.0.0.2/24", "a b"),
    ("eth0 -i . web 10.0.0.2/24", "'.'"),
    ("eth0 -l abcdefghijklmnop web 10.0.0.2/24", "abcdefghijklmnop"),
    ("eth0 -l a/b web 10.0.0.2/24", "a/b"),
    ("eth0 -l a:b web 10.0.0.2/24", "a:b"),
    ("abcdefghijklmnop web 10.0.0.2/24", "abcdefghijklmnop"),
    ("eth/0 web 10.0.0.2/24", "eth/0"),
    ("eth0 'web one' 10.0.0.2/24", "web one"),
    ("eth0 _web 10.0.0.2/24", "_web"),
    ("eth0 web! 10.0.0.2/24", "web!"),
    ("eth0 / 10.0.0.2/24", "container"),
    ("eth0 '$(touch /tmp/x)' 10.0.0.2/24", "$(touch /tmp/x)"),
    ("eth0 '`id`' 10.0.0.2/24", "`id`"),
    ("eth0 web '10.0.0.2/24", "quotation"),
    ('eth0 web "10.0.0.2/24', "quotation"),
    ("eth0 web 'dhclient:-H \"x'", "quotation"),
    ("eth0 web 10.0.0.2/24 \\", "escape"),
    ("", "empty"),
    ("   ", "empty"),
    ("pipework", "empty"),
]


@pytest.mark.parametrize("command, culprit", ERRORS)
def test_bad_input_raises_one_line_spec_error(command, culprit):
    with pytest.raises(SpecError) as info:
        parse(command)
    message = str(info.value)
    assert "\n" not in message
    assert message.strip()
    assert culprit in message


def test_missing_netmask_hint_names_address():
    with pytest.raises(SpecError, match=r"10\.0\.0\.5/24"):
        parse("eth0 web 10.0.0.5")


def test_no_ipv4_hint_for_ipv6():
    with pytest.raises(SpecError) as info:
        parse("eth0 web fe80::5")
    assert "/24" not in str(info.value)


def test_empty_argv_list():
    with pytest.raises(SpecError, match="empty"):
        parse([])


def test_multiline_input_still_one_line_error():
    with pytest.raises(SpecError) as info:
        parse("eth0\nweb\n'10.0.0.2/24")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("ifname", ["a" * 15, "é" * 7])
def test_ifname_limit_is_in_bytes_ok(ifname):
    assert parse(["eth0", "-i", ifname, "web", "0/0"]).container_ifname == ifname


def test_ifname_limit_counts_bytes():
    with pytest.raises(SpecError):
        parse(["eth0", "-i", "é" * 8, "web", "0/0"])


@pytest.mark.parametrize("vlan", ["²", "¹⁰"])
def test_vlan_superscript_digit_is_spec_error(vlan):
    with pytest.raises(SpecError):
        parse(["eth0", "web", "10.0.0.2/24", "@" + vlan])


@pytest.mark.parametrize("exc_type", [SpecError, NotSupportedError])
def test_error_str_collapses_whitespace(exc_type):
    assert str(exc_type("a\nb\t c")) == "a b c"


# --- refuse_unsupported ------------------------------------------------------------------------

UNSUPPORTED = [
    "eth0 web dhcp",
    "eth0 web udhcpc",
    "eth0 web udhcpc-f",
    "eth0 web dhclient:-v",
    "eth0 web dhclient-f",
    "eth0 web dhcpcd",
    "--wait",
    "--wait -i eth2",
    "route web add default via 10.0.0.1",
    "rule web add from all table 100",
    "tc web qdisc show",
    "--direct-phys eth0 web 10.0.0.2/24",
    "eth0 web 10.0.0.2/24 @10",
    "eth0 web 10.0.0.2/24 02:42:ac:11:00:02@10",
    "eth0 web 2001:db8::2/64",
    "-a 6 eth0 web 2001:db8::2/64@2001:db8::1",
    "-a 6 br0 web 0/0",
]


@pytest.mark.parametrize("command", UNSUPPORTED)
def test_refuse_unsupported(command):
    with pytest.raises(NotSupportedError) as info:
        refuse_unsupported(parse(command))
    message = str(info.value)
    assert "\n" not in message
    assert "not supported yet" in message


@pytest.mark.parametrize("command", [
    "br0 web 10.0.0.2/24",
    "br0 web 10.0.0.2/24@10.0.0.1",
    "-a 4 -i eth2 -l vweb0 br0 web 10.0.0.2/24@10.0.0.1 02:42:ac:11:00:02",
    "br0 web 10.0.0.2/24 U:web",
    "br0 web 0/0",
    "eth0 web 0/0",
    "mac:02:42:ac:11:00:02 web 10.0.0.2/24",
])
def test_supported_specs_pass(command):
    parsed = parse(command)
    assert refuse_unsupported(parsed) is parsed


def test_not_supported_is_not_spec_error():
    assert not issubclass(NotSupportedError, SpecError)
    assert NotSupportedError.exit_code != SpecError.exit_code


@pytest.mark.parametrize("words", [
    ["br0", "-i", "eth%d", "web", "10.0.0.2/24"],
    ["br0", "-l", "pw%d", "web", "10.0.0.2/24"],
    ["br%d", "web", "10.0.0.2/24"],
])
def test_percent_in_names_is_refused(words):
    """The kernel would expand %d into a number: the name asked for is not the name made."""
    with pytest.raises(SpecError, match="not a valid interface name"):
        parse(words)


@pytest.mark.parametrize("name", ["veth1pl12345", "vx1pl2", "pwabcdefghijklm"])
def test_generated_host_names_are_reserved(name):
    with pytest.raises(SpecError, match="reserved for the names pipeworkd generates"):
        parse(["br0", "-l", name, "web", "10.0.0.2/24"])


@pytest.mark.parametrize("ipspec", ["10.0.0.2/24@10.0.0.0", "10.0.0.2/24@10.0.0.255"])
def test_gateway_cannot_be_network_or_broadcast(ipspec):
    with pytest.raises(SpecError, match="network or broadcast address of 10.0.0.0/24"):
        parse(["br0", "web", ipspec])


@pytest.mark.parametrize("ipspec", ["10.0.0.2/0", "10.0.0.2/0.0.0.255", "10.0.0.2/00", "10.0.0.2/0.0.0.0"])
def test_prefix_zero_and_host_masks_are_refused(ipspec):
    with pytest.raises(SpecError, match="prefix length must be a number"):
        parse(["br0", "web", ipspec])


def test_dotted_netmask_is_accepted():
    assert str(parse(["br0", "web", "10.0.0.2/255.255.255.0"]).address) == "10.0.0.2/24"
