"""Result files: their format (`format`), reading them back (`reading`), and what a run's history says (`quantities`).

Torch-free: the planner, the studies and every report read results through here.
"""
