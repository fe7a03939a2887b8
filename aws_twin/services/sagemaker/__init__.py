"""SageMaker in the twin: training (built-in XGBoost, run for real in a worker process), hosting
(endpoints that serve the trained boosters, with data capture), the model registry, and the
``sagemaker-runtime`` InvokeEndpoint.

``handlers.py`` / ``runtime.py`` hold the operations; ``training.py``, ``hosting.py``,
``registry.py``, ``capture.py``, ``images.py`` and ``xgb.py`` do the work (no wire format).
"""
