"""The ``team:`` section of ``plant.yaml``: people, shifts, roster, escalation (SPEC §6).

Everything a person can misspell is cross-checked here (unknown person, crew, shift, role,
channel, policy) and reported at the offending item, so a typo never silently leaves an
alert without a recipient. See docs/people.md for the format with a full example.
"""

from __future__ import annotations

import re
import string
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from plantpulse.dashboards.pins import pin_hash_problem
from plantpulse.notifier.links import secret_problem
from plantpulse.schema import Duration, StrictModel

Language = Literal["zh", "en"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROOT = ""
"""The asset path of the whole site (written ``"*"`` or left out in the config)."""

NOBODY = "-"
"""In a rotation pattern: no crew works this shift on this day."""


def norm_asset(path: str) -> str:
    """``"*"``, ``""`` and ``"/line1/"`` -> the canonical forms ``""`` and ``"line1"``."""
    p = path.strip().strip("/")
    return ROOT if p in ("", "*") else p


def _clock(value: Any) -> int:
    # YAML 1.1 reads an unquoted 06:00 as the sexagesimal int 360 (= minutes), so ints are minutes.
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,2}:[0-5]\d\s*", value):
        hh, mm = value.strip().split(":")
        minutes = int(hh) * 60 + int(mm)
    else:
        raise ValueError(f"invalid time of day {value!r}: write it like 06:00 or 22:30")
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"time of day out of range: {value!r}")
    return minutes % (24 * 60)


def _fmt_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


ClockTime = Annotated[int, BeforeValidator(_clock), PlainSerializer(_fmt_clock, return_type=str)]
"""A site-local time of day ``HH:MM``, held as minutes after midnight."""


def _local(value: Any, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("write site-local times without an offset, e.g. 2026-12-01 22:00")
        return value
    if isinstance(value, date):
        return datetime.combine(value + timedelta(days=1) if end else value, time())
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"invalid date/time {value!r}: write 2026-12-01 or 2026-12-01 22:00") from None
        if dt.tzinfo is not None:
            raise ValueError("write site-local times without an offset, e.g. 2026-12-01 22:00")
        if end and len(value.strip()) == 10:  # a bare date as the end means "through that day"
            dt += timedelta(days=1)
        return dt
    raise ValueError("a date/time is written like 2026-12-01 or 2026-12-01 22:00")


LocalStart = Annotated[datetime, BeforeValidator(lambda v: _local(v, end=False))]
"""Site-local naive date/time; a bare date means its 00:00."""
LocalEnd = Annotated[datetime, BeforeValidator(lambda v: _local(v, end=True))]
"""Site-local naive date/time, exclusive; a bare date means through the end of that day."""


@lru_cache(maxsize=1)
def apprise_schemas() -> frozenset[str]:
    """URL schemes apprise knows (loaded once, ~0.2 s); empty when apprise cannot be loaded."""
    try:
        from apprise import NotificationManager

        return frozenset(s.lower() for s in NotificationManager().schemas())  # type: ignore[no-untyped-call]
    except Exception:  # pragma: no cover - apprise is a dependency; never block config loading on it
        return frozenset()


class Person(StrictModel):
    roles: list[str] = Field(
        default_factory=list, description="roles this person can hold (operator, team_lead, ...)"
    )
    contacts: dict[str, SecretStr] = Field(
        default_factory=dict, description="channel name (wecom, email, sms, ...) -> Apprise URL"
    )
    language: Language | None = Field(None, description="message language; default: the team's")
    board_pin: SecretStr | None = Field(
        None, description="hash of the PIN for acknowledging on the board (`plantpulse board pin`)"
    )

    @field_validator("board_pin")
    @classmethod
    def _pin_hash(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and (problem := pin_hash_problem(v.get_secret_value())) is not None:
            raise ValueError(problem)
        return v

    @field_validator("contacts")
    @classmethod
    def _apprise_urls(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        known = apprise_schemas()
        for kind, url in v.items():
            scheme, sep, _ = url.get_secret_value().partition("://")
            if not sep or not scheme:
                raise ValueError(f"contact {kind!r} is not a URL (write it like wecombot://KEY)")
            if known and scheme.lower() not in known:
                raise ValueError(f"contact {kind!r}: apprise does not know the scheme {scheme + '://'!r}")
        return v


class Shift(StrictModel):
    """A daily shift in the site's time zone; ``end <= start`` means it ends the next day."""

    start: ClockTime
    end: ClockTime
    days: list[Weekday] | None = Field(None, description="weekdays the shift starts on; default: every day")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


class Rotation(StrictModel):
    """Crews rotating over shifts: one letter per day of the cycle for each shift."""

    start: LocalStart = Field(description="site-local date of day 0 of the cycle")
    pattern: dict[str, str] = Field(
        min_length=1, description="shift name -> crew letters, one per day; '-' nobody"
    )

    @field_validator("start")
    @classmethod
    def _date_only(cls, v: datetime) -> datetime:
        if v.time() != time():
            raise ValueError("the cycle start is a date, e.g. 2026-01-05")
        return v

    def days(self) -> dict[str, str]:
        """Patterns with the readability spaces removed."""
        return {shift: "".join(p.split()) for shift, p in self.pattern.items()}

    @property
    def cycle(self) -> int:
        return len(next(iter(self.days().values())))


class Assignment(StrictModel):
    """Who holds ``roles`` for the asset subtree ``asset``: named people, fixed crews or a rotation."""

    asset: str = "*"
    roles: list[str] = Field(min_length=1)
    people: list[str] = Field(default_factory=list)
    crews: list[str] = Field(default_factory=list)
    rotation: str | None = None
    shift: str | None = Field(None, description="only during this shift; default: around the clock")

    @model_validator(mode="after")
    def _one_source(self) -> Assignment:
        if sum((bool(self.people), bool(self.crews), self.rotation is not None)) != 1:
            raise ValueError("give exactly one of people, crews or rotation")
        if self.rotation is not None and self.shift is not None:
            raise ValueError("a rotation brings its own shifts: drop 'shift'")
        return self

    @property
    def path(self) -> str:
        return norm_asset(self.asset)


class _Window(StrictModel):
    from_: LocalStart = Field(alias="from")
    to: LocalEnd

    @model_validator(mode="after")
    def _ordered(self) -> _Window:
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self


class Leave(_Window):
    """``person`` is away: removed from every role in the window (a parent level or a cover fills in)."""

    kind: Literal["leave"]
    person: str
    note: str | None = None


class Cover(_Window):
    """``person`` takes over the duties of ``for`` or, without ``for``, holds ``roles`` for ``asset``."""

    kind: Literal["cover"]
    person: str
    for_: str | None = Field(None, alias="for")
    roles: list[str] = Field(default_factory=list)
    asset: str = "*"
    note: str | None = None

    @model_validator(mode="after")
    def _what(self) -> Cover:
        if (self.for_ is None) == (not self.roles):
            raise ValueError("a cover names either 'for' (whose duties) or 'roles' (which roles)")
        return self


class Swap(_Window):
    """Two people exchange their duties in the window (one-sided swaps are two covers)."""

    kind: Literal["swap"]
    people: tuple[str, str]
    asset: str = "*"
    note: str | None = None


Override = Annotated[Leave | Cover | Swap, Field(discriminator="kind")]


class Maintenance(_Window):
    """Notifications for alerts on the asset subtree are held in the window; alerts are still recorded."""

    asset: str = "*"
    reason: str | None = None


class EscalationStep(StrictModel):
    after: Duration = Field(0, description="time since raise without acknowledgement")
    to: list[str] = Field(min_length=1, description="role names (resolved through the roster) and/or people")
    channels: list[str] | None = Field(
        None, description="contact kinds to use; default: all of each person's"
    )


class EscalationPolicy(StrictModel):
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: Duration | None = Field(
        None, description="re-send the latest step this often while unacknowledged"
    )
    continue_after_clear: bool = Field(
        False, description="keep escalating an alert that cleared unacknowledged"
    )
    max_shelve: Duration = Field(8 * 3600 * 10**9, description="a shelve never lasts longer than this")

    @field_validator("steps")
    @classmethod
    def _ordered(cls, v: list[EscalationStep]) -> list[EscalationStep]:
        for a, b in pairwise(v):
            if b.after < a.after:
                raise ValueError("steps must be in order of 'after'")
        return v

    @field_validator("repeat")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("repeat must be positive (leave it out for no repeats)")
        return v


class FloodConfig(StrictModel):
    """More than ``threshold`` messages per ``window`` to one person is a flood (EEMUA 191: 10 per 10 min)."""

    threshold: int = Field(10, ge=1)
    window: Duration = 600 * 10**9
    digest_every: Duration = Field(60 * 10**9, description="during a flood, one digest at most this often")


class LinkConfig(StrictModel):
    secret: SecretStr | None = Field(
        None, description="HMAC key, at least 16 bytes; default: $PLANTPULSE_ACK_SECRET"
    )
    ttl: Duration = Field(24 * 3600 * 10**9, description="how long an acknowledge link stays valid")
    base_url: str | None = Field(
        None, description="public URL of the acknowledge API, e.g. https://pp.example/ack"
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and (problem := secret_problem(v.get_secret_value(), "the secret")) is not None:
            raise ValueError(problem)
        return v


TEMPLATE_FIELDS = frozenset(
    {"kind", "severity", "rule", "asset", "tag", "message", "value", "raised_at", "cleared_at", "active_for",
     "for_window", "trend", "on_shift", "ack_link", "step", "alert_id"}
)  # fmt: skip


class Templates(StrictModel):
    """``str.format`` templates over TEMPLATE_FIELDS; unset parts use the built-in defaults."""

    title: str | None = None
    body: str | None = None

    @field_validator("title", "body")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        if v is not None:
            for name in template_fields(v):
                if name not in TEMPLATE_FIELDS:
                    raise ValueError(f"unknown field {{{name}}}; known: {', '.join(sorted(TEMPLATE_FIELDS))}")
            try:
                v.format_map(dict.fromkeys(TEMPLATE_FIELDS, "x"))
            except (ValueError, KeyError, IndexError) as e:
                raise ValueError(
                    f"invalid template: {e} (fields are text: use {{value}}, not {{value:.1f}})"
                ) from None
        return v


def template_fields(template: str) -> list[str]:
    """Plain field names of a format string; attribute or index access is refused."""
    try:
        parsed = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ValueError(f"invalid template: {e}") from None
    for name in parsed:
        if not name.isidentifier():
            raise ValueError(f"use plain fields such as {{asset}} in templates, not {{{name}}}")
    return parsed


class TeamConfig(StrictModel):
    """People, roster and escalation of one site; every name referenced is checked to exist."""

    language: Language = "en"
    people: dict[str, Person] = Field(default_factory=dict)
    assets: dict[str, list[str]] = Field(
        default_factory=dict, description="parent -> children, beyond tag paths"
    )
    shifts: dict[str, Shift] = Field(default_factory=dict)
    crews: dict[str, list[str]] = Field(default_factory=dict)
    rotations: dict[str, Rotation] = Field(default_factory=dict)
    assignments: list[Assignment] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    default_policy: str | None = Field(
        None, description="policy for rules without notify; default: 'default'"
    )
    maintenance: list[Maintenance] = Field(default_factory=list)
    flood: FloodConfig = FloodConfig()
    links: LinkConfig = LinkConfig()
    templates: dict[Language, Templates] = Field(default_factory=dict)

    @property
    def roles(self) -> set[str]:
        """Every role a person has or an assignment gives."""
        out = {r for p in self.people.values() for r in p.roles}
        out.update(r for a in self.assignments for r in a.roles)
        return out

    def policy(self, name: str | None) -> EscalationPolicy | None:
        """The policy a rule's ``notify:`` names, or the default one."""
        if name is None:
            name = self.default_policy or "default"
        return self.policies.get(name)

    def contacts(self, person: str, channels: list[str] | tuple[str, ...] | None) -> list[tuple[str, str]]:
        """(channel, Apprise URL) pairs to reach ``person`` over ``channels`` (None: all)."""
        p = self.people.get(person)
        if p is None:
            return []
        return [(k, u.get_secret_value()) for k, u in p.contacts.items() if channels is None or k in channels]

    def language_of(self, person: str) -> Language:
        p = self.people.get(person)
        return p.language if p is not None and p.language is not None else self.language

    @model_validator(mode="after")
    def _references(self) -> TeamConfig:
        errs: list[tuple[tuple[str | int, ...], str]] = []
        people, roles = self.people, self.roles

        def person(loc: tuple[str | int, ...], name: str) -> None:
            if name not in people:
                errs.append((loc, f"unknown person {name!r}"))

        for name in people:
            if name in roles:
                errs.append((("people", name), f"{name!r} is both a person and a role; rename one"))
        for crew, members in self.crews.items():
            for i, m in enumerate(members):
                person(("crews", crew, i), m)
        for rname, rot in self.rotations.items():
            lengths = set()
            for shift, pat in rot.days().items():
                loc: tuple[str | int, ...] = ("rotations", rname, "pattern", shift)
                if shift not in self.shifts:
                    errs.append((loc, f"unknown shift {shift!r}"))
                lengths.add(len(pat))
                for ch in sorted(set(pat) - {NOBODY}):
                    if ch not in self.crews:
                        errs.append(
                            (loc, f"unknown crew {ch!r} (crews in patterns are one letter; '-' is nobody)")
                        )
            if len(lengths) > 1 or 0 in lengths:
                errs.append(
                    (
                        ("rotations", rname, "pattern"),
                        "every shift's pattern must have the same, non-zero length",
                    )
                )
        for i, a in enumerate(self.assignments):
            for j, p in enumerate(a.people):
                person(("assignments", i, "people", j), p)
            for j, c in enumerate(a.crews):
                if c not in self.crews:
                    errs.append((("assignments", i, "crews", j), f"unknown crew {c!r}"))
            if a.rotation is not None and a.rotation not in self.rotations:
                errs.append((("assignments", i, "rotation"), f"unknown rotation {a.rotation!r}"))
            if a.shift is not None and a.shift not in self.shifts:
                errs.append((("assignments", i, "shift"), f"unknown shift {a.shift!r}"))
        for i, o in enumerate(self.overrides):
            if isinstance(o, Swap):
                for j, p in enumerate(o.people):
                    person(("overrides", i, "people", j), p)
            else:
                person(("overrides", i, "person"), o.person)
            if isinstance(o, Cover) and o.for_ is not None:
                person(("overrides", i, "for"), o.for_)
        kinds = {k for p in people.values() for k in p.contacts}
        for pname, pol in self.policies.items():
            for i, step in enumerate(pol.steps):
                for j, who in enumerate(step.to):
                    if who not in roles and who not in people:
                        errs.append(
                            (
                                ("policies", pname, "steps", i, "to", j),
                                f"{who!r} is neither a role nor a person",
                            )
                        )
                for j, ch in enumerate(step.channels or []):
                    if ch not in kinds:
                        errs.append(
                            (("policies", pname, "steps", i, "channels", j), f"nobody has a contact {ch!r}")
                        )
        if self.default_policy is not None and self.default_policy not in self.policies:
            errs.append((("default_policy",), f"unknown policy {self.default_policy!r}"))
        parent_of: dict[str, str] = {}
        for parent, children in self.assets.items():
            for j, child in enumerate(children):
                c = norm_asset(child)
                if c in parent_of:
                    errs.append((("assets", parent, j), f"{child!r} already belongs to {parent_of[c]!r}"))
                parent_of[c] = norm_asset(parent)
        for start in parent_of:
            seen, node = {start}, parent_of.get(start)
            while node is not None and node not in seen:
                seen.add(node)
                node = parent_of.get(node)
            if node is not None:
                errs.append((("assets",), f"the asset hierarchy has a cycle through {start!r}"))
                break
        if errs:
            raise ValidationError.from_exception_data(
                "TeamConfig",
                [
                    InitErrorDetails(type=PydanticCustomError("reference", msg), loc=loc, input=None)
                    for loc, msg in errs
                ],
            )
        return self
