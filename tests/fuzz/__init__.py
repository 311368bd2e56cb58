"""Fuzzing: generated and malformed input against the API and the websockets."""
