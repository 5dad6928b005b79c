"""The Dramatiq broker for a configuration: Redis in production, in-process otherwise.

Lives in core because every process that enqueues needs one (the APIs too, which
must not import the workers and their image decoders).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from core.config import Settings


def make_broker(cfg: Settings) -> dramatiq.Broker:
    if cfg.embedded:
        return StubBroker()
    return RedisBroker(
        url=cfg.broker_url,
        heartbeat_timeout=cfg.broker_heartbeat_ms,
        maintenance_chance=cfg.broker_maintenance_chance,
    )
