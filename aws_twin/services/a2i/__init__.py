"""Amazon Augmented AI (A2I): human task UIs, flow definitions, human loops and a local review page."""
