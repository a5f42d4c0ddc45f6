"""Helpers shared by the repository's tests and scripts: servers under test, raw SIP and RTP peers,
load, soak, fault and fuzz drivers, and the fake OpenAI Realtime server.

No pytest here: the scripts under scripts/ import these from a plain interpreter, and the tests'
fixtures wrap them. Nothing in the product imports this package (tests/test_layers.py). It reads
data kept in a checkout of the repository (SIPp scenarios, fuzz corpora, recorded model sessions),
see `voicegw.testing.paths`.
"""
