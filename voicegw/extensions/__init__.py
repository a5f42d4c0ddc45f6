"""Optional helpers under the Agents SDK's `agents.extensions` names."""
