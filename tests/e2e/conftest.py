"""The end-to-end tests reuse the MQTT tests' private Mosquitto (``mqtt_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collectors" / "mqtt"))
