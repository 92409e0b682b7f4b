import socket

import pytest

from tests.conftest import NetworkGuardError


def test_connecting_to_a_public_address_fails_loudly() -> None:
    with socket.socket() as s, pytest.raises(NetworkGuardError, match="non-loopback"):
        s.connect(("8.8.8.8", 443))


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
