"""Everything that calls the Bot API for a chat: the one send path (pacing, retry_after) and delivery."""
