"""VLM re-annotation of LeRobot datasets: an imperative task text per episode and a pose label per camera.

``depi-annotate`` (:mod:`depi.annotate.cli`) samples frames of each episode (:mod:`~depi.annotate.frames`), asks
a vision-language model through an OpenAI-compatible endpoint or a local transformers model
(:mod:`~depi.annotate.backends`) with a versioned prompt whose reply is validated against a JSON schema
(:mod:`~depi.annotate.prompt`), and writes ``data_ids/annotations/<owner>_<name>.json``, the file the mixture
reads (:mod:`~depi.annotate.run`), plus a review report (:mod:`~depi.annotate.report`).
"""
