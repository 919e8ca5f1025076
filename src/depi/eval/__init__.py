"""Evaluation of trained checkpoints: closed-loop in the :mod:`depi.sim` simulators and offline on datasets.

* :mod:`depi.eval.policy_runner`: a checkpoint + its transforms bound to one robot layout, ``infer(obs)``;
* :mod:`depi.eval.sim`: receding-horizon rollouts, success rate with a Wilson 95% interval, videos;
* :mod:`depi.eval.offline`: MSE / cosine of predicted vs recorded action chunks on train and held-out episodes;
* :mod:`depi.eval.splits`: seeded episode / task splits recorded per dataset;
* :mod:`depi.eval.cli`: the ``depi-eval`` console script.
"""
