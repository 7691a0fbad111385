"""The contract between the checkout saga and the shipping service: a command, two replies."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.messaging import Command, Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipOrder(Command[None]):
    order_id: str
    address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Shipped(Event):
    order_id: str
    tracking: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentRefused(Event):
    order_id: str
    reason: str
