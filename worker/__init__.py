"""GPU worker: pure compute. Reads jobs from Redis, runs the engine, writes results back.

Never imports aiogram and holds no bot token.
"""

from worker.notices import quiet_library_notices

quiet_library_notices()  # before any worker module imports diffusers or transformers
