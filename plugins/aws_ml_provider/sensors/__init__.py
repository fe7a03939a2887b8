"""Sensors of aws_ml_provider."""
