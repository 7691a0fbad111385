"""The app of docs/migrations.md: dockyard's tables in the database at ``DATABASE_URL``."""

import os

from dockyard import App, module
from dockyard.sql import SqlModule

URL = os.environ.get("DATABASE_URL", "sqlite:///shop.sqlite")


@module(imports=[SqlModule.register(URL)])
class Shop: ...


app = App.build(Shop)
