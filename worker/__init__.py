"""GPU worker: pure compute. Reads jobs from Redis, runs the engine, writes results back.

Never imports aiogram and holds no bot token.
"""
