"""Development and test infrastructure shipped with the project: an embedded redis-server,
the local Telegram Bot API server, and the offline demo."""
