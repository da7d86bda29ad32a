"""The Telegram front end: aiogram 3 routers, dialogs, settings, i18n and delivery of results."""
