"""What the user sees and presses: keyboards, callback data, texts, filters and dialog states."""
