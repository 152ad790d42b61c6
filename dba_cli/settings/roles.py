"""The roles a run plays in the tables, declared once for recipes, studies and the result file schema.

A recipe's methods are `baseline`, `literal` (the paper's settings as
stated), `chosen` (our reading where it is silent), `tuned-baseline`,
`tuned` (DBA) or `tuned-peer` (one of DBA's peers, settings/methods.py; settings chosen by `dba tune`); the studies add `tuning` (a grid
candidate) and `ablation` (a DBA variant). A result file holds one of these.
"""

RECIPE_ROLES = ("baseline", "literal", "chosen", "tuned-baseline", "tuned", "tuned-peer")
STUDY_ROLES = ("tuning", "ablation")
RESULT_ROLES = (*RECIPE_ROLES, *STUDY_ROLES)
TUNED_ROLES = ("tuned", "tuned-baseline", "tuned-peer")  # chosen by `dba tune`; the order tables and figures show them in
