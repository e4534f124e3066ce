"""A config-driven LLM gateway with OpenAI-compatible endpoints."""

__version__ = "0.1.0"
