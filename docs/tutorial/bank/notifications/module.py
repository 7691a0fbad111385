"""The notifications component: it hears of new accounts through an event, never a call."""

from dockyard import module
from dockyard.sql import SqlModule

from bank.notifications.welcome import WelcomeNewCustomer


@module(imports=[SqlModule], handlers=[WelcomeNewCustomer])
class NotificationsModule: ...
