"""Where orders are loaded from and saved to: their event streams."""

from __future__ import annotations

from dockyard.eventsourcing import AggregateRepository, EventStore
from dockyard.messaging import IPublisher
from examples.shop.components.orders.domain.order import Order


class Orders(AggregateRepository[Order]):
    """Saving appends the new events, then publishes them in the same scope and transaction."""

    def __init__(self, store: EventStore, events: IPublisher) -> None:
        super().__init__(store, events)
