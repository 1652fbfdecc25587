"""Slack adapter: slack-bolt (async) on the shared core."""
