"""Example randomized defences that ship with the project, for ``python -m empirical.audit --model``.

``empirical.examples.defences`` holds the factories: ``naive_diffpure``, ``random_resize_pad``,
``gaussian_noise``, ``dropout_at_test_time`` and the deterministic control ``digits_cnn``.
"""
