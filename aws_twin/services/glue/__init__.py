"""AWS Glue on the twin: jobs whose scripts really run as local Python processes."""
