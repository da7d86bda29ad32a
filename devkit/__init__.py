"""Development and test infrastructure shipped with the project: an embedded redis-server,
the local Telegram Bot API server, and the offline demo."""

from worker.notices import quiet_library_notices

quiet_library_notices()  # the tiny bundle writer and the benches import diffusers through devkit
