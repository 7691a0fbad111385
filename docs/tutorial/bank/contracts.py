"""What the bank tells other services. Services share these classes and nothing else."""

from dataclasses import dataclass

from dockyard import Event
from dockyard.serialization import event_type


@event_type("bank.account-opened")  # the stable name stored and sent with each event
@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    account_id: str
    owner: str
