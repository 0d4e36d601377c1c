"""The run page's grouping of hyperparameters, from TrainConfig's field groups."""

from __future__ import annotations

from dataclasses import asdict, fields

from admin.params import OTHER, Setting, grouped
from ml.config import TrainConfig


def test_every_field_names_one_of_the_groups_in_the_fields_order() -> None:
    groups = TrainConfig.groups()
    assert list(groups) == [f.name for f in fields(TrainConfig)]
    assert list(dict.fromkeys(groups.values())) == ["Model", "Loss", "Training", "Evaluation"]
    assert groups["embedding_dim"] == "Model"
    assert groups["temperature"] == "Loss"
    assert groups["epochs"] == groups["learning_rate"] == "Training"
    assert groups["monitor"] == "Evaluation"


def test_the_defaults_read_as_groups_in_field_order_with_nothing_changed() -> None:
    groups = grouped(asdict(TrainConfig()))
    assert [g.label for g in groups] == ["Model", "Loss", "Training", "Evaluation"]
    assert [s.name for g in groups for s in g.settings] == [f.name for f in fields(TrainConfig)]
    assert not any(s.changed for g in groups for s in g.settings)
    assert all(g.changed == 0 for g in groups)


def test_changed_settings_come_first_in_their_group_with_the_default_beside() -> None:
    params = asdict(TrainConfig(seed=3, epochs=1, output_dim=16, eval_users=50))
    groups = {g.label: g for g in grouped(params)}
    training = groups["Training"].settings
    assert training[:2] == [Setting("epochs", 1, 7, True), Setting("seed", 3, 0, True)]  # the fields' order
    assert not any(s.changed for s in training[2:])
    assert groups["Training"].changed == 2
    assert groups["Model"].settings[0] == Setting("output_dim", 16, 256, True)
    assert groups["Model"].settings[1].name == "embedding_dim"
    assert groups["Evaluation"].settings[0] == Setting("eval_users", 50, 0, True)
    assert groups["Loss"].changed == 0


def test_a_stored_key_this_version_does_not_know_is_shown_last_and_a_missing_one_left_out() -> None:
    params = asdict(TrainConfig())
    del params["gap_cap"]  # a run from before the field existed
    params["old_knob"] = 4
    groups = grouped(params)
    assert groups[-1].label == OTHER
    assert groups[-1].settings == [Setting("old_knob", 4, None, False)]
    assert "gap_cap" not in {s.name for g in groups for s in g.settings}
