"""Grafana dashboards generated from ``plant.yaml`` (``plantpulse dashboards generate | push``).

``config`` the ``grafana:`` section; ``plant`` what the dashboards need from the plant (lines,
assets, operator positions, rule limits, shifts); ``sqltext`` literals and time buckets;
``queries`` / ``kpi_sql`` every panel's SQL (``kpi_sql`` alone names ``kpi_results``);
``sdk`` the PostgreSQL query and annotation models grafana-foundation-sdk lacks; ``build`` the
dashboards; ``provision`` the files for Grafana's file provisioning; ``push`` the HTTP API upsert;
``cli`` the commands. See docs/dashboards.md.
"""
