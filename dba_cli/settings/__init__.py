"""What a run is made of, declared once and validated, without torch.

`run.RunConfig` holds every setting of one run; `subsets` says what a training
subset name means; `evaluation` when a run evaluates; `names` which names may
become folders; `validation` how problems become one-line errors. The CLI's
help, the recipes and the reports all read these modules, so none of them
imports torch.
"""
