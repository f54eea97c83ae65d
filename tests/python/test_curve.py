"""The Python side of CURVE key files (sluice.curve): the format sluice-keygen writes and
common/curve.hpp reads, and the rule for when CURVE is required."""
import pytest
import zmq

from sluice.curve import KeyFileError, local_endpoint, read_key


def test_read_key_skips_comments_and_blank_lines(tmp_path):
    public, _ = zmq.curve_keypair()
    path = tmp_path / "broker.pub"
    path.write_text(f"# the broker\n\n  {public.decode()}  \n")
    assert read_key(path) == public


@pytest.mark.parametrize("text, problem", [
    ("# nothing\n", "holds 0 keys"),
    ("x" * 39 + "\n", "line 1 is not a key"),
    ("#\n" + "x" * 39 + "~\n", "line 2 is not a key"),
])
def test_a_bad_key_file_says_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=problem):
        read_key(path)
    with pytest.raises(KeyFileError, match="cannot be read"):
        read_key(tmp_path / "missing.key")


def test_two_keys_in_one_file_are_refused(tmp_path):
    path = tmp_path / "two.key"
    path.write_text(zmq.curve_keypair()[0].decode() + "\n" + zmq.curve_keypair()[0].decode() + "\n")
    with pytest.raises(KeyFileError, match="holds 2 keys"):
        read_key(path)


@pytest.mark.parametrize("endpoint, local", [
    ("ipc:///run/sluice/workers", True), ("tcp://127.0.0.1:5556", True), ("tcp://127.3.2.1:1", True),
    ("tcp://localhost:5556", True), ("tcp://[::1]:5556", True), ("tcp://10.0.0.1:0;127.0.0.1:5556", True),
    ("tcp://0.0.0.0:5556", False), ("tcp://*:5556", False), ("tcp://10.0.0.2:5556", False),
    ("tcp://[::]:5556", False), ("tcp://127.evil.example:5556", False), ("ws://127.0.0.1:5556", False),
])
def test_local_endpoint(endpoint, local):
    assert local_endpoint(endpoint) is local
