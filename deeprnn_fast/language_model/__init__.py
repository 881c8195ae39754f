"""The book's experiment: a character-level language model of The Time Machine (d2l, "Deep Recurrent Neural
Networks") on the fused layers, and the `deeprnn-fast` command line that trains it and generates from it.

- `data`: the book's text, its preprocessing, vocabulary and windows;
- `model`: the model, its training loop, evaluation and generation;
- `model_dir`: the files of a trained model directory;
- `cli`: the command line.
"""
