import sys

from payment_platform.bench.run import main

sys.exit(main())
