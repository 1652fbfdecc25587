"""Discord adapter: discord.py gateway client, threads as conversations, /codebot slash commands."""
