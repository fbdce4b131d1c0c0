import sys

if sys.argv[1:2] == ["worker"]:  # a child of the benchmark: only what it needs is imported
    from payment_platform.bench.worker import worker_main

    sys.exit(worker_main(sys.argv[2:]))

from payment_platform.bench.run import main

sys.exit(main())
