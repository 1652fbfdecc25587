"""Protocol fakes of external services (an OpenAI-compatible LLM, Slack, Discord) for tests and benches."""
