"""A run's hyperparameters as its page shows them: in TrainConfig's groups, the ones set away from the
defaults first in each group and marked."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, NamedTuple

from ml.config import TrainConfig

OTHER = "Other"  # stored keys this version of TrainConfig does not know (a run from an older version)


class Setting(NamedTuple):
    name: str
    value: Any
    default: Any  # None for a key TrainConfig does not know
    changed: bool  # the run set it away from the default


class Group(NamedTuple):
    label: str
    settings: list[Setting]

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.settings)


def grouped(params: dict[str, Any]) -> list[Group]:
    """Return the stored params in TrainConfig's groups (in its order, unknown keys last, empty groups
    left out); in each, the settings that differ from the defaults come first, then the fields' order."""
    defaults, groups = asdict(TrainConfig()), TrainConfig.groups()
    settings: dict[str, list[Setting]] = {label: [] for label in (*groups.values(), OTHER)}
    for name in (*groups, *(k for k in params if k not in groups)):
        if name in params:
            default = defaults.get(name)
            changed = name in defaults and params[name] != default
            settings[groups.get(name, OTHER)].append(Setting(name, params[name], default, changed))
    return [
        Group(label, sorted(rows, key=lambda s: not s.changed)) for label, rows in settings.items() if rows
    ]
