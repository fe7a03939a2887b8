"""AWS console links (``BaseAwsLink`` subclasses) for the provider's operators."""
