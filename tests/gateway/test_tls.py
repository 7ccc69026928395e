"""The gateway serves TLS when a certificate and key are configured."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate"),
]


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_gateway_answers_tls_clients_only(start_gateway, certificate):
    cert, key = certificate
    gateway = start_gateway(tls_cert=cert, tls_key=key)
    reply = search_stub(gateway.address, tls_ca=cert).GetStats(pb.GetStatsRequest(), timeout=10)
    assert reply.store_backend == "qdrant-edge"
    with pytest.raises(grpc.RpcError) as error:
        search_stub(gateway.address).GetStats(pb.GetStatsRequest(), timeout=3)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_needs_both_files(start_gateway, certificate):
    with pytest.raises(ValueError, match="both"):
        start_gateway(tls_cert=certificate[0])
