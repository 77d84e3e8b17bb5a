"""RunConfig from TOML and --set overrides; hashes; clear errors for unknown keys."""

from __future__ import annotations

import pytest

from harness import cli
from harness.config import EvalProtocol, RunConfig, load_toml, parse_overrides, run_config_from_dict


def test_toml_and_overrides_build_a_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('searcher = "evolution"\nseed = 3\n[protocol]\nval_size = 500\n[searcher_params]\ngenerations = 5\n')
    data = load_toml(path)
    config = run_config_from_dict(data)
    assert (config.searcher, config.seed, config.protocol.val_size) == ("evolution", 3, 500)
    assert config.searcher_params == {"generations": 5}
    over = parse_overrides(["protocol.bn_mode=exact", "searcher=pcf-es", "searcher_params.threshold=0.6"])
    assert over == {"protocol": {"bn_mode": "exact"}, "searcher": "pcf-es", "searcher_params": {"threshold": 0.6}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sercher": "x"}, "unknown key.*sercher.*valid: .*searcher"),
        ({"protocol": {"valsize": 3}}, r"unknown key.*valsize in \[protocol\]"),
        ({"protocol": {"bn_mode": "foo"}}, "bn_mode must be 'ema' or 'exact'"),
        ({"cache": {"location": "disk"}}, "cache location"),
    ],
)
def test_bad_config_keys_and_values_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        run_config_from_dict(data)


def test_malformed_toml_and_override_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("searcher = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["seed"])


def test_hashes_follow_what_changes_results():
    base = RunConfig()
    assert base.hash() == RunConfig(results_dir="elsewhere", run_id="x").hash()
    assert base.hash() != RunConfig(seed=1).hash()
    assert EvalProtocol().hash() != EvalProtocol(val_size=100).hash()


def test_cli_lists_its_commands_and_reports_errors(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "search", "compare", "report", "reproduce"):
        assert command in out
    assert cli.main(["search", "--supernet", "nope", "--quiet"]) == 2
    assert "unknown supernet 'nope'" in capsys.readouterr().err


def test_cli_train_writes_a_checkpoint_and_refuses_to_redo_it(tmp_path, capsys):
    path = tmp_path / "ck.pt"
    args = ["train", "--epochs", "1", "--checkpoint", str(path), "--quiet", "--set", "supernet_overrides.widths=[8, 16, 32]"]
    assert cli.main(args) == 0
    assert path.exists() and "trained conv-tiny on fashion16" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "already exists" in capsys.readouterr().out
