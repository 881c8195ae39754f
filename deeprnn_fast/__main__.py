"""`python -m deeprnn_fast`: the same command line as the console script `deeprnn-fast`."""
import sys

from deeprnn_fast.language_model.cli import main

sys.exit(main())
