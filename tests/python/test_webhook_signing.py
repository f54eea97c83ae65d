"""The deliverer's pure parts (python_workers/sluice/webhooks.py): Standard Webhooks signatures
against a known vector, the refused target networks, the bounded payload, the config."""
import base64
import json

import pytest
from sluice import webhooks

# The HMAC test vector of the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_reference_vector():
    assert webhooks.sign(SECRET, MSG_ID, STAMP, BODY) == SIGNATURE


def test_verify_takes_a_matching_signature_among_several_and_refuses_the_rest():
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(STAMP), "webhook-signature": f"v1,bm90IGl0 {SIGNATURE}"}
    assert webhooks.verify(SECRET, headers, BODY, now=STAMP + 10)
    assert not webhooks.verify(SECRET, headers, BODY + b" ", now=STAMP)
    assert not webhooks.verify(SECRET, {**headers, "webhook-id": "msg_other"}, BODY, now=STAMP)
    assert not webhooks.verify(SECRET, headers, BODY, now=STAMP + 301)  # a replay, too late
    assert not webhooks.verify(webhooks.make_secret(), headers, BODY, now=STAMP)


def test_a_made_secret_is_whsec_and_32_random_bytes():
    secret = webhooks.make_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert secret != webhooks.make_secret()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "::", "fe80::1%eth0", "fd00::1",
                                     "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "224.0.0.251", "ff02::1"])
def test_non_public_addresses_are_refused(address):
    assert webhooks.refused(address, [])


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_not(address):
    assert not webhooks.refused(address, [])


def test_allowed_nets_let_their_addresses_through():
    allowed = webhooks.parse_nets("127.0.0.0/8, fd00::/8")
    assert not webhooks.refused("127.0.0.1", allowed) and not webhooks.refused("::ffff:127.0.0.2", allowed)
    assert not webhooks.refused("fd00::5", allowed)
    assert webhooks.refused("10.0.0.1", allowed) and webhooks.refused("::1", allowed)
    with pytest.raises(ValueError, match="not-a-net"):
        webhooks.parse_nets("127.0.0.0/8,not-a-net")


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@example.com/", "http://127.0.0.1/",
                                 "http://[::1]:8080/", "http:///x"])
def test_check_url_refuses_what_may_not_be_posted_to(url):
    with pytest.raises(webhooks.TargetRefused):
        webhooks.check_url(url, [])


def test_check_url_leaves_names_to_the_resolver():
    assert webhooks.check_url("http://localhost:8080/x", []).host == "localhost"


def test_payload_leaves_out_a_big_result_then_the_history():
    job = {"id": "j", "status": "succeeded", "result": "x" * 100_000, "history": [{"error": "e" * 4000}] * 20}
    body = webhooks.payload("succeeded", 1_700_000_000_000, job, 16_384)
    assert len(body) <= 16_384
    sent = json.loads(body)
    assert sent["type"] == "job.succeeded" and sent["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert sent["data"]["result"] is None and sent["data"]["result_omitted"] is True
    assert sent["data"]["history"] == [] and sent["data"]["history_omitted"] is True
    small = json.loads(webhooks.payload("failed", 1, {"id": "j", "result": 1, "history": []}, 16_384))
    assert small["data"] == {"id": "j", "result": 1, "history": []}


def test_config_reads_the_environment_and_names_a_bad_variable():
    config = webhooks.Config.from_env({"SLUICE_WEBHOOK_TIMEOUT_MS": "2000", "SLUICE_WEBHOOK_ALLOW_NETS": "127.0.0.0/8"})
    assert config.timeout_ms == 2000 and config.max_age_s == 86_400 and len(config.allow_nets) == 1
    with pytest.raises(ValueError, match="SLUICE_WEBHOOK_CONCURRENCY"):
        webhooks.Config.from_env({"SLUICE_WEBHOOK_CONCURRENCY": "0"})
    with pytest.raises(ValueError, match="SLUICE_WEBHOOK_CLAIM_IDLE_MS"):
        webhooks.Config.from_env({"SLUICE_WEBHOOK_TIMEOUT_MS": "20000", "SLUICE_WEBHOOK_CLAIM_IDLE_MS": "5000"})
