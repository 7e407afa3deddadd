"""Beyond one machine: the roles of a deployment on Kafka, with faust-streaming evaluators.

    collect   collectors -> ``samples`` topic: binary batches by partition, watermarks
    evaluate  faust agents: per-partition micro-batches -> rules engine; state in a faust table
              (changelog topic); alert transitions -> ``alerts`` topic, deterministic ids
    sink      ``samples`` + ``alerts`` -> store exactly once (batch ids from offsets, alerts
              deduplicated by id); notifier, escalation and API

Pure parts: ``partitioning`` (which partition carries a tag), ``wire`` (message codecs),
``partition`` (one partition's evaluation and checkpoint). See docs/scale-out.md.
"""
