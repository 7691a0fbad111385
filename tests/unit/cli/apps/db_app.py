"""An app for ``dockyard db``: its database from ``DOCKYARD_DB_URL`` (a SQLite file by default)."""

import os

from dockyard import App, module
from dockyard.sql import SqlModule

URL = os.environ.get("DOCKYARD_DB_URL", "sqlite:///shop.sqlite")


@module(imports=[SqlModule.register(url=URL)])
class Shop: ...


@module()
class NoDatabase: ...


app = App.build(Shop)
no_database = App.build(NoDatabase)
