"""Driving robots with a policy: ``depi-control`` (record, rollout, replay) and its pieces, torch-free.

* :mod:`depi.robot.robots`: the robot interface, the simulated SO-101 / SO-100 arms (:class:`SimRobot`);
* :mod:`depi.robot.lerobot_robots`: lerobot's SO-100 / SO-101 follower and leader arms (the ``lerobot`` extra);
* :mod:`depi.robot.safety`: target and range clamps, torque off on failure;
* :mod:`depi.robot.policy`: the policy (``ws://`` server or in-process checkpoint) and receding-horizon execution;
* :mod:`depi.robot.loop`, :mod:`depi.robot.session`, :mod:`depi.robot.control`: the episode loop, a run, the CLI.

Nothing is imported here.
"""
