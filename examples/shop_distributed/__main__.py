"""``python -m examples.shop_distributed rabbit|nats|memory [--namespace NAME]``."""

import argparse
import asyncio

from examples.shop_distributed.apps import BROKERS
from examples.shop_distributed.run import run

parser = argparse.ArgumentParser(prog="python -m examples.shop_distributed")
parser.add_argument("broker", choices=BROKERS, help="memory needs no servers")
parser.add_argument("--namespace", default="shop", help="prefix of the destinations")
arguments = parser.parse_args()
asyncio.run(run(arguments.broker, arguments.namespace))
