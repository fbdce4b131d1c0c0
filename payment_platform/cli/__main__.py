"""`python -m payment_platform.cli`: the same as the `payment-platform` script."""

import sys

from payment_platform.cli import main

sys.exit(main())
