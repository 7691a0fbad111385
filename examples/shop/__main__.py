"""`python -m examples.shop` runs the scripted demo."""

import asyncio

from examples.shop.demo import run

asyncio.run(run())
