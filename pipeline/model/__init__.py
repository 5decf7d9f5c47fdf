"""Layer 4: the tokenizer, the T5 event forecaster, its losses and the training loop."""
