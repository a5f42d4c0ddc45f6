"""The SIP mutation fuzzer and the coverage-guided parser targets (docs/fuzzing.md)."""
