"""The studies as plans: which runs each needs, and how to choose from their results.

`tune` chooses every method's setting on a validation split, `converge` tunes
every method for time to a validation target, `ablate` trains DBA's full grid
of selection settings, `protocol` varies one protocol choice at a time; all
tuning shares one candidate/selection model (`candidates`). A study trains
nothing and writes nothing: the CLI plans with it, run/ executes, the study
chooses from the result files, run/ executes the choices, and reports/ writes
the report.
"""
