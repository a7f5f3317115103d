"""The studies, on one training stack: ``python -m experiments.<module> --preset tiny|quick|paper``.

Layout (nothing here is installed with the wheel; run the modules from a checkout):

* ``compare_methods`` -- the main job (MTL methods x optimisers against single-task baselines);
* ``paper_a``, ``paper_b``, ``paper_c`` -- one package per paper: its study entry points and reports;
* shared by every study: ``datasets`` (the benchmark registry: every property a study needs of a
  data set), ``runs`` (one run spec, one ``train_run`` with hooks, the grid runner),
  ``selection`` (best epoch on validation, single-task baselines, delta-m in either
  convention), ``optimizers`` (the optimiser axis), ``report`` (tables, plots, atomic
  outputs) and ``cli`` (the arguments every study shares).
"""
