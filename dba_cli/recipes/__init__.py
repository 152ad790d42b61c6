"""Recipes: the paper's settings as YAML files (`recipe`), how they are found, composed and loaded (`loading`),
their study sections (`sections`), and the runs they plan (`planned`)."""
