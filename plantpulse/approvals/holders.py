"""Who holds a role for approvals, and whom a chain's ``Notify`` reaches. Pure.

A rule or KPI file belongs to no one asset, so a role is held here by who has it in the people
file (``team.people.*.roles``) or is named for it by an assignment (``people:`` of an
assignment giving the role): the same people ``roster show`` can put on duty for it, without
the shift. Approving is not shift work; reminders reach everyone eligible.
"""

from __future__ import annotations

from plantpulse.approvals.chain import Notify
from plantpulse.people.schema import TeamConfig

__all__ = ["holders", "recipients", "roles_of"]


def roles_of(team: TeamConfig, person: str) -> frozenset[str]:
    p = team.people.get(person)
    own = set(p.roles) if p is not None else set()
    own.update(r for a in team.assignments if person in a.people for r in a.roles)
    return frozenset(own)


def holders(team: TeamConfig, role: str) -> list[str]:
    """Everyone holding ``role``, in the people file's order."""
    return [name for name in team.people if role in roles_of(team, name)]


def recipients(team: TeamConfig, n: Notify) -> list[str]:
    """People of ``n`` plus the holders of its roles (a name that is a person counts as one),
    without ``exclude``, each once."""
    out = list(n.people)
    for name in n.roles:
        out.extend([name] if name in team.people else holders(team, name))
    return [x for x in dict.fromkeys(out) if x not in n.exclude]
