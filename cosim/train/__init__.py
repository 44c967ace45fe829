"""Hardware-aware S4D classifiers: training with PyTorch and deployment on simulated crossbars.

One module per stage, one entry point each (see docs/train.md):

* :mod:`cosim.train.data` — tasks and user ``.npz`` files: :func:`~cosim.train.data.load_dataset`;
* :mod:`cosim.train.model` — the classifier whose S4D layers compute with their stored crossbar
  matrices: :class:`~cosim.train.model.S4DClassifier`;
* :mod:`cosim.train.qat` — quantizers (STE), device noise, gain jitter, pruning;
* :mod:`cosim.train.trainer` — ``cosim train``: :func:`~cosim.train.trainer.train_run`;
* :mod:`cosim.train.deploy` — ``cosim deploy``: :func:`~cosim.train.deploy.deploy_run`;
* :mod:`cosim.train.report` — the deployment files;
* :mod:`cosim.train.importer` — state-spaces/s4 weights:
  :func:`~cosim.train.importer.import_s4d_state_dict`;
* :mod:`cosim.train.config` — TRAIN.toml and DEPLOY.toml.

PyTorch is imported only by the modules that need it (the optional extra ``cosim[train]``).
"""
