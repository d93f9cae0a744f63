"""SharePoint's quickXorHash, checked against published reference vectors rather than our simulator.

The archive settles an interrupted upload by comparing ``file.hashes.quickXorHash`` with the hash of
the PDF it meant to write, so a wrong hash either re-uploads forever or accepts a different file.
The vectors are the input/output pairs that rclone's OneDrive backend publishes for its own
implementation (base64 in, base64 out); sizes 0 to 256 cover the empty input, a partial register
and inputs long enough to wrap the 160-bit register.
"""

from __future__ import annotations

import base64

import pytest

from devtools.simulators.graph import quick_xor_hash as simulator_hash
from msp_reports.delivery.hashes import quick_xor_hash

VECTORS = [
    (0, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    (1, "Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (8, "/aNzzCFPS/A=", "/RjFHJgRgicsAR4ACAAAAAAAAAA="),
    (20, "T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg="),
    (64, "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+cbvwfdWL8aQ==",
     "n1anP5NfvD4XDYWIeRPW3ZkPv1Y="),
    (256, "qwGf2ESubE5jOUHHyc94ORczFYYbc2OmEzo+hBIyzJiNwAzC8PvJqtTzwkWkSslgHFGWQZR2BV5+"
          "uYTrYT7HVwRM40vqfj0dBgeDENyTenIOL1LHkjtDKoXEnQ0mXAHoJ8PjbNC93zi5TovVRXTNzfGE"
          "s5dpWVqxUzb5lc7dwkyvOluBw482mQ4xrzYyIY1t+//OrNi1ObGXuUw2jBQOFfJVj2Y6BOyYmfB1"
          "y36eBxi3zxeG5d5NYjm2GSh6e08QMAwu3zrINcqIzLOuNIiGXBtl7DjKt7b5wqi4oFiRpZsCyx2s"
          "mhSrdrtK/CkdU6nDN+34vSR/M8rZpWQdBE7a8g==",
     "WYT9JY3JIo/pEBp+tIM6Gt2nyTM="),
]


@pytest.mark.parametrize(("size", "data", "expected"), VECTORS, ids=[f"{v[0]}-bytes" for v in VECTORS])
def test_quick_xor_hash_matches_the_published_vectors(size, data, expected):
    content = base64.b64decode(data)
    assert len(content) == size
    assert quick_xor_hash(content) == expected


def test_the_length_is_part_of_the_hash():
    # 160 zero bytes and 320 zero bytes XOR to the same register: only the length tells them apart
    assert quick_xor_hash(bytes(160)) != quick_xor_hash(bytes(320))


@pytest.mark.parametrize(("size", "data", "expected"), VECTORS, ids=[f"{v[0]}-bytes" for v in VECTORS])
def test_the_graph_simulator_reports_the_same_hash_from_its_own_implementation(size, data, expected):
    assert simulator_hash(base64.b64decode(data)) == expected
