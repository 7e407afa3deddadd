"""The pure request planner: merging, gaps, the 125-register and 2000-bit limits, determinism."""

from __future__ import annotations

from typing import Any

from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.modbus_plan import plan


def source(tags: list[dict[str, Any]], **options: Any) -> ModbusSource:
    return ModbusSource.model_validate(
        {"kind": "modbus", "name": "s", "tcp": {"host": "h"}, "tags": tags, **options}
    )


def spans(src: ModbusSource, **kw: Any) -> list[tuple[int, str, int, int]]:
    return [(r.unit, r.table, r.address, r.count) for r in plan(src, **kw)]


def reg(name: str, address: int, type_: str = "uint16", **kw: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "type": type_, **kw}


def test_contiguous_tags_merge_into_one_request_in_address_order() -> None:
    src = source([reg("c", 3, "float32"), reg("a", 0), reg("b", 1, "int32")])
    (req,) = plan(src)
    assert (req.address, req.count) == (0, 5)
    assert [t.name for t in req.tags] == ["a", "b", "c"]


def test_gaps_merge_only_up_to_max_gap() -> None:
    tags = [reg("a", 0), reg("b", 3), reg("c", 10)]
    assert spans(source(tags)) == [(1, "holding", 0, 1), (1, "holding", 3, 1), (1, "holding", 10, 1)]
    assert spans(source(tags, max_gap=2)) == [(1, "holding", 0, 4), (1, "holding", 10, 1)]
    assert spans(source(tags, max_gap=6)) == [(1, "holding", 0, 11)]


def test_requests_never_exceed_125_registers() -> None:
    tags = [reg(f"t{i}", 2 * i, "float32") for i in range(200)]  # 400 registers back to back
    reqs = plan(source(tags))
    assert [r.count for r in reqs] == [124, 124, 124, 28]  # a float32 is never split
    assert sum(len(r.tags) for r in reqs) == 200
    assert all(r.count <= 125 for r in reqs)
    assert [r.count for r in plan(source(tags, max_registers=10))][:2] == [10, 10]


def test_a_tag_reaching_exactly_125_registers_fits() -> None:
    reqs = plan(source([reg("a", 0), reg("b", 124)], max_gap=125))
    assert [(r.address, r.count) for r in reqs] == [(0, 125)]
    reqs = plan(source([reg("a", 0), reg("b", 125)], max_gap=125))
    assert [(r.address, r.count) for r in reqs] == [(0, 1), (125, 1)]


def test_coils_merge_up_to_2000_bits_and_count_gaps_in_16_bit_steps() -> None:
    coils = [{"name": f"c{i}", "table": "coil", "address": i} for i in range(2500)]
    assert [r.count for r in plan(source(coils))] == [2000, 500]
    sparse = [{"name": "a", "table": "coil", "address": 0}, {"name": "b", "table": "coil", "address": 17}]
    assert len(plan(source(sparse))) == 2
    assert [(r.address, r.count) for r in plan(source(sparse, max_gap=1))] == [(0, 18)]


def test_units_and_tables_never_share_a_request_and_come_in_a_fixed_order() -> None:
    tags = [
        reg("h2", 0, unit_id=2),
        reg("i1", 1, table="input"),
        reg("h1", 0),
        {"name": "d1", "table": "discrete_input", "address": 0},
        {"name": "c1", "table": "coil", "address": 0},
        reg("i1b", 0, table="input"),
    ]
    assert spans(source(tags, unit_id=1)) == [
        (1, "coil", 0, 1),
        (1, "discrete_input", 0, 1),
        (1, "holding", 0, 1),
        (1, "input", 0, 2),
        (2, "holding", 0, 1),
    ]


def test_overlapping_tags_share_registers() -> None:
    tags = [
        reg("word", 0),
        reg("bit0", 0, "bit", bit=0),
        reg("bit9", 0, "bit", bit=9),
        reg("f", 0, "float32"),
    ]
    (req,) = plan(source(tags))
    assert (req.address, req.count, len(req.tags)) == (0, 2, 4)


def test_the_plan_is_deterministic_whatever_the_tag_order() -> None:
    tags = [reg(f"t{i}", (i * 37) % 300, "uint16") for i in range(120)]
    first = plan(source(tags, max_gap=3))
    again = plan(source(list(reversed(tags)), max_gap=3))
    assert first == again


def test_merge_false_gives_one_request_per_tag() -> None:
    tags = [reg(f"t{i}", i) for i in range(10)]
    assert len(plan(source(tags))) == 1
    assert [(r.address, r.count) for r in plan(source(tags), merge=False)] == [(i, 1) for i in range(10)]


def test_describe_names_unit_table_and_range() -> None:
    (req,) = plan(source([reg("a", 10, "float64")], unit_id=4))
    assert req.describe() == "unit 4 holding 10-13 (4 registers)"
