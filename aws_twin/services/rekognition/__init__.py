"""Amazon Rekognition on the twin: DetectLabels with a real pretrained model and Custom Labels
trained for real (see docs/rekognition-twin.md)."""
