"""SageMaker in the twin: training (built-in XGBoost, run for real in a worker process), processing
(scripts on the scikit-learn image, run as local Python processes), batch transform and
hyperparameter tuning (XGBoost, for real), hosting (endpoints that serve the trained boosters, with
data capture), the model registry, and the ``sagemaker-runtime`` InvokeEndpoint. What the twin
cannot run answers NotImplemented (``handlers.REFUSED``). See docs/twin-sagemaker.md.

``handlers.py`` / ``runtime.py`` hold the operations; ``training.py``, ``processing.py``,
``transform.py``, ``tuning.py``, ``hosting.py``, ``registry.py``, ``capture.py``, ``images.py`` and
``xgb.py`` do the work (no wire format); ``jobs.py`` is the job runner the four job engines share.
"""
