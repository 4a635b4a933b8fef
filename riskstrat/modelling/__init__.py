"""Admission-risk models: specifications, estimators, TreeSHAP reasons, evaluation and plots."""
