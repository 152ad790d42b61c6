"""Turning planned runs into result files: planning and staleness (`plan`), execution (`execute`),
the runners that train (`runners`: this process or a local pool; `ray_runner`: a Ray cluster),
locks (`locks`) and the result document of one run (`document`)."""
