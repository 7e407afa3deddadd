-- CONTRACT, NOT A MIGRATION: the kpi_results table as the dashboards expect it (issue 10 stores
-- one row per closed KPI window). The KPI engineer's migration replaces this file when it
-- lands; until then the Grafana tests create the table from here. The dashboards name the
-- table and its columns only in plantpulse/dashboards/grafana/kpi_sql.py.
CREATE TABLE kpi_results (
    kpi text NOT NULL,
    asset text NOT NULL,
    window_kind text NOT NULL,  -- shift | hour | day | week
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    value double precision,
    numerator double precision,
    denominator double precision,
    coverage double precision,
    partial boolean,
    crew text,
    on_shift jsonb,
    target double precision,
    direction text,  -- '>=' or '<='
    met boolean,
    computed_at timestamptz,
    PRIMARY KEY (kpi, asset, window_kind, window_start)
);
