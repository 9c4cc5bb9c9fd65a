"""`python -m syncd.cli`: how a worker supervisor starts its children, and tests their processes.

They run the interpreter they are in rather than the `syncd` script, which need not be on PATH
(a virtualenv not activated, a test run from the source tree).
"""

import sys

from syncd.cli.parser import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
