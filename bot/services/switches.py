"""Requests a user's model family could not run, kept for the one-tap "run it with <other family>"
button (bot.services.families offers it, bot/routers/model.py runs it)."""

from __future__ import annotations

import logging
import secrets

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from contract import keys
from contract.families import Family
from contract.spec import JobSpec

log = logging.getLogger(__name__)


class PendingSwitch(BaseModel):
    """A request the user's family could not run, kept for the "run it with <other family>" button."""

    user_id: int
    spec: str
    """The request as a JobSpec of the family that can run it (JSON); submitted as is on the press."""
    refused_by: Family
    """The user's family, which does not serve the mode."""


class SwitchStore:
    """Requests waiting for the user to switch family for one job (keys.switch_offer, with a TTL)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def offer(self, spec: JobSpec, refused_by: Family) -> str:
        """Keep ``spec`` (already for a family that serves its mode) for the user's press."""
        token = secrets.token_hex(6)
        pending = PendingSwitch(user_id=spec.user_id, spec=spec.to_json(), refused_by=refused_by)
        await self.redis.set(keys.switch_offer(token), pending.model_dump_json(), ex=keys.SWITCH_OFFER_TTL)
        return token

    async def take(self, token: str, user_id: int) -> PendingSwitch | None:
        """The offer, once, for its own user; None when gone, expired or someone else's."""
        raw = await self.redis.get(keys.switch_offer(token))
        if raw is None:
            return None
        try:
            pending = PendingSwitch.model_validate_json(raw)
        except ValidationError:
            log.warning("switch offer %s unreadable; dropped", token)
            await self.redis.delete(keys.switch_offer(token))
            return None
        if pending.user_id != user_id:
            return None
        if not await self.redis.delete(keys.switch_offer(token)):
            return None  # pressed twice at once: the other press took it
        return pending
