"""Conformance: our simulators checked by clients we did not write.

Each test points a vendor's own SDK, or a client generated from the vendor's published OpenAPI
spec, at the simulator (the session's ``sim`` fixture from tests/conftest.py) and requires every
reply the project relies on to parse with it: models, required fields, enums, nullability, paging
links and error envelopes. Where no spec or client exists, the vendor's documented example
responses are pinned as fixtures under ``tests/conformance/data/`` and the simulator's replies are
compared with their shape. docs/fidelity.md says, per system, which client or spec (and version)
is used, what is checked and what is still unconfirmed.
"""
