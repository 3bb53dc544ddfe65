"""Inputs: how ``X`` of any kind becomes batches the network takes.

- :mod:`~sk_cotuning.inputs.conversion`: arrays, image files, folders and
  ``SliceDataset`` -> a Dataset of raw samples, with the checks on scale,
  shape and files;
- :mod:`~sk_cotuning.inputs.transforms`: the default train/eval transforms
  per kind of sample, and test-time views;
- :mod:`~sk_cotuning.inputs.hooks`: the skorch hooks (``get_dataset``,
  ``get_iterator``, ...) through which the estimators use both.
"""
