"""Amazon Textract on the twin (see handlers.py)."""
