"""names.host_veth_name: pipework's `v<CIF>pl<PID>` when it fits, else a hashed `pw...` (pipework-cli.md §2.4, §5)."""

from __future__ import annotations

import hashlib
import itertools
import string

import pytest

from pipeworkd.names import host_veth_name
from pipeworkd.spec import SpecError, validate_ifname

ID_A = "a" * 64
ID_B = "b" * 64

PIDS = [1, 7, 42, 999, 12345, 123456, 999999, 1234567, 4194304]
CIFS = ["e", "eth1", "eth12", "eth123", "eth1234", "container0", "abcdefghijklmno", "ethpl1", "pl", "x1pl2",
        "a.b", "v", "pw", "eth-1", "eth_1"]


def cid(pid: int) -> str:
    return hashlib.sha256(str(pid).encode()).hexdigest()


@pytest.mark.parametrize("cif, pid, expected", [
    ("eth1", 12345, "veth1pl12345"),
    ("eth1", 1, "veth1pl1"),
    ("eth1", 4194304, "veth1pl4194304"),
    ("eth12", 4194304, "veth12pl4194304"),
    ("e", 1234567, "vepl1234567"),
    ("abcdefghijk", 1, "vabcdefghijkpl1"),
])
def test_legacy_name_when_it_fits(cif, pid, expected):
    assert host_veth_name(cif, pid, ID_A) == expected


def test_default_cif_example():
    assert host_veth_name("eth1", 12345, ID_A) == "veth1pl12345"


@pytest.mark.parametrize("cif, pid", [
    ("container0", 4193991),
    ("eth123", 1234567),
    ("abcdefghijklmno", 1),
    ("abcdefghijk", 12),
])
def test_hashed_when_legacy_too_long(cif, pid):
    name = host_veth_name(cif, pid, ID_A)
    assert name.startswith("pw")
    assert len(name) == 15


def test_boundary_exactly_15_is_legacy():
    assert host_veth_name("eth12", 1234567, ID_A) == "veth12pl1234567"
    assert host_veth_name("eth123", 1234567, ID_A).startswith("pw")


@pytest.mark.parametrize("digits", range(1, 8))
@pytest.mark.parametrize("cif_len", range(1, 16))
def test_never_over_15_chars(digits, cif_len):
    pid = int("9" * digits)
    name = host_veth_name("c" * cif_len, pid, ID_A)
    assert 1 <= len(name) <= 15
    assert len(name.encode()) <= 15


@pytest.mark.parametrize("cif", CIFS)
@pytest.mark.parametrize("pid", PIDS)
def test_result_is_valid_ifname(cif, pid):
    name = host_veth_name(cif, pid, cid(pid))
    assert validate_ifname(name, "veth") == name


def test_hashed_characters():
    name = host_veth_name("abcdefghijklmno", 1, ID_A)
    assert set(name[2:]) <= set(string.ascii_lowercase + "234567")


def test_deterministic():
    assert host_veth_name("container0", 4193991, ID_A) == host_veth_name("container0", 4193991, ID_A)


def test_distinct_cifs_of_one_container():
    pid = 4193991
    names = [host_veth_name(f"container{i}", pid, ID_A) for i in range(10)]
    names += [host_veth_name(f"eth{i}", pid, ID_A) for i in range(100)]
    assert len(set(names)) == len(names)


def test_distinct_containers_same_long_cif():
    cif = "container0"
    assert host_veth_name(cif, 4193991, ID_A) != host_veth_name(cif, 4193992, ID_B)
    assert host_veth_name(cif, 4193991, ID_A) != host_veth_name(cif, 4193991, ID_B)


def test_legacy_and_hashed_never_equal():
    legacy = set()
    hashed = set()
    for cif, pid in itertools.product(CIFS, PIDS):
        name = host_veth_name(cif, pid, cid(pid))
        (legacy if name == f"v{cif}pl{pid}" else hashed).add(name)
        assert name.startswith("v") or name.startswith("pw")
    assert legacy and hashed
    assert not legacy & hashed
    assert all(name.startswith("v") for name in legacy)
    assert all(name.startswith("pw") for name in hashed)


def test_all_combinations_distinct():
    """Many (CIF, PID) pairs, one container ID per PID: no two live attachments share a name."""
    cifs = CIFS + [f"eth{i}" for i in range(30)] + [f"net{i:012d}" for i in range(30)] + ["c" * n for n in range(1, 16)]
    pids = PIDS + list(range(2, 40)) + [10 ** n - 1 for n in range(1, 8)] + [10 ** n for n in range(1, 7)]
    cifs = list(dict.fromkeys(cifs))
    pids = list(dict.fromkeys(pids))
    seen = {}
    for cif, pid in itertools.product(cifs, pids):
        name = host_veth_name(cif, pid, cid(pid))
        assert name not in seen, f"{name} for {(cif, pid)} and {seen[name]}"
        seen[name] = (cif, pid)
    assert len(seen) == len(cifs) * len(pids)


def test_legacy_ambiguity_is_impossible():
    """`v<CIF>pl<PID>`: a CIF ending in `pl<digits>` does not meet a shorter CIF with a longer PID."""
    assert host_veth_name("x1pl2", 3, ID_A) == "vx1pl2pl3"
    assert host_veth_name("x1", 23, ID_A) != host_veth_name("x1pl2", 3, ID_A)
    assert host_veth_name("x", 12, ID_A) != host_veth_name("x1", 2, ID_A)


@pytest.mark.parametrize("cif, pid", [("éééé", 12345), ("é" * 7, 1)])
def test_limit_counts_bytes_for_non_ascii_cif(cif, pid):
    validate_ifname(cif, "cif")  # the CIF itself is a valid name (at most 15 bytes)
    name = host_veth_name(cif, pid, ID_A)
    assert len(name.encode()) <= 15


def test_non_ascii_cif_is_accepted_by_spec():
    assert validate_ifname("éééé", "cif") == "éééé"
    with pytest.raises(SpecError):
        validate_ifname("é" * 8, "cif")
