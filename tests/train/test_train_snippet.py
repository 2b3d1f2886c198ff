"""The README example, run as written."""

import textwrap

import pytest

import xsol
from xsol.train import metrics, plots, loop as train, trajectory
from xsol.models import linen as models

#: What ``xsol/__init__.py`` exports from the models-and-training modules.
EXPORTS = {
    "SoftmaxRegression": models, "TokenLM": models, "MLP": models, "layer_inputs": models,
    "train_and_evaluate": train, "TrainingState": train, "create_train_state": train,
    "make_train_step": train, "Trajectory": trajectory, "log_steps": trajectory,
    "row_centered_cosine": metrics, "row_centered_distance": metrics,
    "weight_agreement": metrics, "plot_trajectories": plots,
}

SNIPPET = textwrap.dedent(
    """
    import optax
    from sklearn.datasets import load_digits
    import xsol

    X, y = load_digits(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:1400], y[:1400], X[1400:], y[1400:]
    sol = xsol.fit_explicit(X_train, y_train, 10)        # one counting pass, no backprop
    model = xsol.models.SoftmaxRegression(num_features=64, num_classes=10)
    runs = {}
    for name, init in [("warm start", sol), ("random init", "random")]:
        params, runs[name] = xsol.train.train_and_evaluate(
            model, init, optax.adam, X_train, y_train, learning_rate=1e-2, steps=300,
            test=(X_test, y_test), reference=sol, seed=0)
    print(runs["random init"].at(300))        # losses, accuracy, grad norm, cosine, seconds
    runs["warm start"].to_json("warm.json")
    xsol.train.plot_trajectories(runs, "digits.png")  # loss and cosine vs step, log-x
    """
)


def test_readme_snippet(tmp_path, monkeypatch, capsys):
    for name, module in EXPORTS.items():
        if not hasattr(xsol, name):  # until the package namespace exports them
            monkeypatch.setattr(xsol, name, getattr(module, name), raising=False)
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(SNIPPET, "README-snippet", "exec"), ns)
    warm, cold, sol = ns["runs"]["warm start"], ns["runs"]["random init"], ns["sol"]
    X_test, y_test = ns["X_test"], ns["y_test"]
    assert warm.at(0)["test_accuracy"] == pytest.approx(sol.score(X_test, y_test))
    assert warm.at(0)["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert cold.at(0)["cosine"] < 0.2 < 0.6 < cold.at(300)["cosine"]
    assert cold.at(300)["test_accuracy"] > 0.8
    assert warm.meta["optimizer"] == "adam" and warm.meta["init"] == "explicit"
    assert xsol.train.trajectory.Trajectory.from_json(tmp_path / "warm.json").rows[0]["step"] == 0
    assert (tmp_path / "digits.png").stat().st_size > 5000
    out = capsys.readouterr()
    assert "'cosine'" in out.out
    assert "cos=" in out.err  # the progress bar showed the cosine
