"""Agents that `voicegw serve --agent tests.e2e.agents:NAME` runs in the end-to-end tests."""

from voicegw.realtime import RealtimeAgent

assistant = RealtimeAgent(name="Assistant", instructions="You are a helpful voice assistant.")
