"""The command-line main jobs (``python -m sk_cotuning``): the offline digits job
(:mod:`~sk_cotuning.jobs.digits`) and the ImageNet -> Fashion-MNIST job
(:mod:`~sk_cotuning.jobs.fashion`).  Library code they share lives in the library."""
