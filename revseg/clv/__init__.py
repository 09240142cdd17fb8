"""Predictive customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma."""
