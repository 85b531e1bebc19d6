"""One module of checks per graded part; see :mod:`autograder.runner`."""
