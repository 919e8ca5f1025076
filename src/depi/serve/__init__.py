"""Websocket policy serving, wire-compatible with openpi-client.

* :mod:`depi.serve.cli` (``depi-serve``) and :mod:`depi.serve.server`: a checkpoint behind a websocket;
* :mod:`depi.serve.client` (:class:`~depi.serve.client.PolicyClient`), :mod:`depi.serve.broker`
  (:class:`~depi.serve.broker.ActionChunkBroker`), :mod:`depi.serve.wire` (msgpack-numpy) and
  :mod:`depi.serve.protocol`: the robot side, torch-free (numpy, msgpack, websockets).

Nothing is imported here, so ``import depi.serve.client`` never loads torch.
"""
