"""plantpulse: industrial data ingestion and real-time alerting.

Collectors read devices, the stream feeds columnar micro-batches to the event-time rules
engine, the store keeps samples and alerts, and the notifier reaches the people on shift.
"""

__version__ = "0.1.0"
